#!/usr/bin/env bash
# scripts/bench.sh -- tunnel throughput, CPU and memory of roam beside strongSwan and boringtun,
# in the lab (docs/PERFORMANCE.md, "Tunnel throughput"). Root; not part of the test command.
#
# Usage: sudo scripts/bench.sh
#   DURATION       seconds of each iperf3 transfer, each way (10)
#   ROUNDS         rounds; each runs every tunnel once, the order reversed every other round (2)
#   TUNNELS        tunnels, in the order of the odd rounds (roam-roam roam-tcp roam-tls bt-bt ss-ss
#                  roam-ss)
#   RSS_SECONDS    roam-roam memory run: iperf3 --bidir that long, the client's VmRSS every 5 s
#                  (60; 0 skips it)
#   CONNECT_ROUNDS connect wall time, roam against the strongSwan client, both to the strongSwan
#                  server, that many times each, alternating (5; 0 skips it)
#   SETTLE         seconds between a tunnel's first ping and its transfers, for every tunnel (3):
#                  each client has finished starting (roam drops its start-up pages 2 s after
#                  the tunnel is up, harness/src/memory.rs)
#   PERF_SECONDS   perf record -g of the roam client for that long during a roam-roam upload and
#                  download (0, the default: no profile); reports in the results directory
#   ESP            ESP proposal of the IPsec tunnels (aes256gcm16)
#   ROAM_BIN       roam binary (default target/release/roam, built with `cargo build --release
#                  -p roam-harness` first unless BUILD=0)
#   BORINGTUN_BIN  boringtun-cli (default target/bench-tools/bin/boringtun-cli; cargo install'ed
#                  there with --locked when missing)
#   OUT            results directory (target/bench-results/UTC-DATE)
#
# It installs what it lacks (iperf3 and wireguard-tools with apt-get, strongSwan with lab.sh deps,
# boringtun-cli with cargo install, linux-perf when PERF_SECONDS is set), brings the lab up and
# runs, one tunnel at a time, in the same topology (client in roam-c, server in roam-s, the
# iperf3 server in roam-l on 203.0.113.2; TCP, one stream; upload = client -> LAN, download -R):
#   roam-roam  `roam connect` (TUN) -> `roam serve` (lab.sh serve-up psk)
#   roam-tcp   the same over one TCP connection (RFC 9329, profile transport = "tcp")
#   roam-tls   the same inside TLS on that connection (RFC 9329 section 8, tcp_tls = true)
#   roam-ss    `roam connect` (TUN) -> strongSwan server charon (kernel-libipsec)
#   ss-ss      strongSwan reference client (lab.sh up-client psk) -> strongSwan server
#   bt-bt      boringtun-cli -> boringtun-cli (lab.sh wg-up): userspace WireGuard, set up by wg
# Per run: Mbit/s at the receiver, TCP retransmits at the sender, CPU seconds (utime + stime of
# /proc/PID/stat, all threads) of the client and the server process over both transfers, the
# client's RSS under load (its largest VmRSS, sampled every 0.2 s while the transfers run) and its
# peak RSS (VmHWM of /proc/PID/status, start-up included; every client process is new). The
# table has the median of the rounds and the ratios; each run is a line of runs.tsv.
# `scripts/bench.sh report DIR` prints the table of an earlier run's results again.
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
LAB_SH=$REPO/scripts/lab.sh
LAB=${LAB:-/tmp/roam-lab}
export LAB
TOOLS=$REPO/target/bench-tools
ROAM_BIN_SET=${ROAM_BIN:+1}
export ROAM_BIN=${ROAM_BIN:-$REPO/target/release/roam}
export BORINGTUN_BIN=${BORINGTUN_BIN:-$TOOLS/bin/boringtun-cli}
export RUST_LOG=${RUST_LOG:-warn}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
TUNNELS=${TUNNELS:-roam-roam roam-tcp roam-tls bt-bt ss-ss roam-ss}
RSS_SECONDS=${RSS_SECONDS:-60}
PERF_SECONDS=${PERF_SECONDS:-0}
SETTLE=${SETTLE:-3}
CONNECT_ROUNDS=${CONNECT_ROUNDS:-5}
ESP=${ESP:-aes256gcm16}
BUILD=${BUILD:-1}
STAMP=$(date -u +%Y%m%dT%H%MZ)
OUT=${OUT:-$REPO/target/bench-results/$STAMP}
LAN_HOST=203.0.113.2
NS_C=roam-c NS_S=roam-s
HZ=$(getconf CLK_TCK)

fail() { echo "bench: error: $*" >&2; exit 1; }
say() { echo "[bench] $*" >&2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

[ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces)"
in_range() { is_uint "$1" && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
in_range "$DURATION" 1 600 || fail "DURATION: 1..600 seconds"
in_range "$ROUNDS" 1 20 || fail "ROUNDS: 1..20"
[ "$RSS_SECONDS" = 0 ] || in_range "$RSS_SECONDS" 10 3600 || fail "RSS_SECONDS: 0 or 10..3600"
in_range "$PERF_SECONDS" 0 120 || fail "PERF_SECONDS: 0..120"
in_range "$SETTLE" 0 60 || fail "SETTLE: 0..60 seconds"
for t in $TUNNELS; do
  case $t in roam-roam|roam-tcp|roam-tls|roam-ss|ss-ss|bt-bt) ;; *) fail "unknown tunnel '$t' in TUNNELS" ;; esac
done

# ------------------------------------------------------------------ tools --
cargo_bin() { command -v cargo 2>/dev/null || { [ -x "$HOME/.cargo/bin/cargo" ] && echo "$HOME/.cargo/bin/cargo"; } || fail "no cargo"; }

install_tools() {
  local pkgs=()
  command -v iperf3 >/dev/null 2>&1 || pkgs+=(iperf3)
  command -v wg >/dev/null 2>&1 || pkgs+=(wireguard-tools)
  command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
  if [ "$PERF_SECONDS" -gt 0 ] && ! command -v perf >/dev/null 2>&1; then pkgs+=(linux-perf); fi
  if [ ${#pkgs[@]} -gt 0 ]; then
    say "installing ${pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${pkgs[@]}" >&2
  fi
  [ -x /usr/lib/ipsec/charon ] || { say "installing strongSwan (lab.sh deps)"; "$LAB_SH" deps >&2; }
  if [ ! -x "$BORINGTUN_BIN" ]; then
    [ "$BORINGTUN_BIN" = "$TOOLS/bin/boringtun-cli" ] || fail "no boringtun-cli at $BORINGTUN_BIN"
    say "cargo install boringtun-cli --locked --root $TOOLS"
    "$(cargo_bin)" install boringtun-cli --locked --root "$TOOLS" >&2
  fi
  if [ -z "$ROAM_BIN_SET" ] && [ "$BUILD" = 1 ]; then
    say "cargo build --release -p roam-harness"
    (cd "$REPO" && "$(cargo_bin)" build --release -p roam-harness >&2)
  fi
  [ -x "$ROAM_BIN" ] || fail "no roam binary at $ROAM_BIN"
  "$ROAM_BIN" serve --help >/dev/null 2>&1 || fail "$ROAM_BIN has no 'serve'"
}

# -------------------------------------------------------------- processes --
# A pid only while it runs with that command name (pid files outlive their processes).
pid_alive() { [[ ${1:-} =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }
pid_file() { # FILE COMM
  local p; p=$(cat "$1" 2>/dev/null) || return 1
  pid_alive "$p" "$2" || return 1
  echo "$p"
}
proc_ticks() { # PID -> "utime stime" in clock ticks (fields 14, 15 of /proc/PID/stat, counted
  # after the comm in parentheses; the process's totals over all its threads), "0 0" if gone
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "0 0"; return; }
  s=${s##*) }
  # shellcheck disable=SC2086 # split into fields on purpose
  set -- $s
  echo "${12} ${13}"
}
udp_drops() { # UDP datagrams dropped for a full socket receive buffer, roam-c + roam-s (Udp
  # RcvbufErrors of /proc/net/snmp, per namespace): where the tunnels' lost packets go
  local ns n=0 v
  for ns in "$NS_C" "$NS_S"; do
    # shellcheck disable=SC2016 # awk's own variables
    v=$(ip netns exec "$ns" awk '$1 == "Udp:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp 2>/dev/null)
    n=$((n + ${v:-0}))
  done
  echo "$n"
}
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

stop_pid() { # PID: SIGTERM, up to 10 s, then SIGKILL
  local p=$1 i
  [ -n "$p" ] && [ -d "/proc/$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 1 100); do [ -d "/proc/$p" ] || return 0; sleep 0.1; done
  say "pid $p ignored SIGTERM for 10 s: SIGKILL"
  kill -KILL "$p" 2>/dev/null || true
}

ROAM_PID="" BG_PID="" SERVE_UP=0 WG_UP=0 SS_CLIENT=0
teardown() {
  stop_pid "$BG_PID"; BG_PID=""
  if [ -n "$ROAM_PID" ]; then stop_pid "$ROAM_PID"; wait "$ROAM_PID" 2>/dev/null || true; fi
  ROAM_PID=""
  if [ "$SS_CLIENT" = 1 ]; then "$LAB_SH" down-client >/dev/null 2>&1 || true; SS_CLIENT=0; fi
  if [ "$WG_UP" = 1 ]; then "$LAB_SH" wg-down >/dev/null 2>&1 || true; WG_UP=0; fi
  if [ "$SERVE_UP" = 1 ]; then "$LAB_SH" serve-down >/dev/null 2>&1 || true; SERVE_UP=0; fi
}
trap 'teardown' EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------- tunnels --
CPID="" SPID=""
server_charon() { pid_file "$LAB/server/run/charon.pid" charon; }

roam_up() { # PROFILE: roam connect with its TUN in roam-c; waits for its tun line
  local out=$OUT/roam-connect.out i
  ip netns exec "$NS_C" "$ROAM_BIN" connect --profile "$1" > "$out" 2>&1 < /dev/null &
  ROAM_PID=$!
  for i in $(seq 1 200); do
    grep -q '^tun ' "$out" && { CPID=$ROAM_PID; return 0; }
    [ -d "/proc/$ROAM_PID" ] || break
    sleep 0.1
  done
  say "roam connect printed no tun line within 20 s:"; tail -n 20 "$out" >&2
  return 1
}

setup() { # TUNNEL: brings it up; sets CPID and SPID
  CPID="" SPID=""
  "$LAB_SH" iperf >/dev/null 2>&1 || true
  case $1 in
    roam-roam|roam-tcp|roam-tls)
      SERVE_UP=1
      "$LAB_SH" serve-up psk >/dev/null 2>"$OUT/serve-up.err" || { cat "$OUT/serve-up.err" >&2; return 1; }
      SPID=$(pid_file "$LAB/serve/roam.pid" roam) || return 1
      case $1 in
        roam-tcp) roam_up "$PROFILE_TCP" ;;
        roam-tls) roam_up "$PROFILE_TLS" ;;
        *) roam_up "$PROFILE" ;;
      esac ;;
    roam-ss)
      SPID=$(server_charon) || return 1
      roam_up "$PROFILE" ;;
    ss-ss)
      SS_CLIENT=1
      ESP_PROPOSALS_OVERRIDE=$ESP "$LAB_SH" up-client psk >/dev/null 2>"$OUT/up-client.err" ||
        { tail -n 5 "$OUT/up-client.err" >&2; return 1; }
      SPID=$(server_charon) || return 1
      CPID=$(pid_file "$LAB/client/run/charon.pid" charon) || return 1 ;;
    bt-bt)
      WG_UP=1
      "$LAB_SH" wg-up >/dev/null 2>"$OUT/wg-up.err" || { tail -n 5 "$OUT/wg-up.err" >&2; return 1; }
      SPID=$("$LAB_SH" wg-pid server) || return 1
      CPID=$("$LAB_SH" wg-pid client) || return 1 ;;
  esac
}

wait_path() { # the LAN answers a ping through the tunnel (10 tries)
  local i
  for i in $(seq 1 10); do
    ip netns exec "$NS_C" ping -n -c 1 -W 1 "$LAN_HOST" >/dev/null 2>&1 && return 0
  done
  return 1
}

# ---------------------------------------------------------------- iperf3 --
# iperf3 JSON -> "Mbit/s retransmits bytes" (receiver's rate and bytes, sender's retransmits)
iperf_fields() {
  python3 - "$1" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    end = d["end"]
    rx = end["sum_received"]
    retr = end.get("sum_sent", {}).get("retransmits")
    print("%.1f %s %d" % (rx["bits_per_second"] / 1e6, "n/a" if retr is None else retr, rx["bytes"]))
except Exception:
    print("n/a n/a 0")
PY
}

# measure up|down SECONDS -> "Mbit/s retransmits bytes"
measure() {
  local rev=() json=$OUT/iperf-$1.json try ok=0
  [ "$1" = down ] && rev=(-R --rcv-timeout 15000)
  for try in 1 2; do
    if timeout $(($2 + 30)) ip netns exec "$NS_C" iperf3 -c "$LAN_HOST" -t "$2" "${rev[@]}" \
        -J --connect-timeout 5000 > "$json" 2>/dev/null; then
      ok=1; break
    fi
    # iperf3 3.12's server can stay busy after a client that vanished mid-test: restart it once
    { [ "$try" = 1 ] && grep -q 'server is busy' "$json" 2>/dev/null; } || break
    say "the iperf3 server is stuck busy: restarting it"
    "$LAB_SH" iperf-restart >/dev/null 2>&1 || true
  done
  if [ "$ok" = 0 ]; then
    say "iperf3 $1 failed: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error","?"))' "$json" 2>/dev/null || echo '?')"
    echo "n/a n/a 0"; return
  fi
  iperf_fields "$json"
}

# rss_sampler PID FILE: the largest VmRSS of PID, sampled every 0.2 s until FILE.stop exists or
# PID ends (at most 30 minutes), written to FILE
rss_sampler() {
  local pid=$1 file=$2 max=0 v i
  for i in $(seq 1 9000); do
    [ -e "$file.stop" ] && break
    v=$(status_kb "$pid" VmRSS) || break
    [ -n "$v" ] || break
    [ "$v" -gt "$max" ] && max=$v
    sleep 0.2
  done
  echo "$max" > "$file"
}

secs() { awk -v t="$1" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }'; }

# one run of one tunnel: a line of runs.tsv
run_one() { # TUNNEL ROUND
  local t=$1 r=$2 cu0 cs0 su0 ss0 cu1 cs1 su1 ss1 up down hwm drops note=""
  say "round $r: $t"
  if ! setup "$t"; then
    note="setup failed"
  elif ! wait_path; then
    note="no ping through the tunnel"
  fi
  if [ -n "$note" ]; then
    say "$t: $note"
    printf '%s\t%s\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\t0\t%s\tn/a\n' "$t" "$r" "$note" >> "$OUT/runs.tsv"
    teardown; return
  fi
  sleep "$SETTLE"
  read -r cu0 cs0 <<<"$(proc_ticks "$CPID")"; read -r su0 ss0 <<<"$(proc_ticks "$SPID")"; drops=$(udp_drops)
  # the client's resident memory under load: its largest VmRSS while the transfers run (VmHWM
  # below also covers its start-up)
  local loaded=$OUT/rss-load-$t-$r
  rm -f "$loaded" "$loaded.stop"
  rss_sampler "$CPID" "$loaded" &
  local sampler=$!
  up=$(measure up "$DURATION")
  down=$(measure down "$DURATION")
  touch "$loaded.stop"; wait "$sampler" 2>/dev/null || true
  local load_kb; load_kb=$(cat "$loaded" 2>/dev/null || echo 0)
  [ "$load_kb" -gt 0 ] 2>/dev/null || load_kb=n/a
  read -r cu1 cs1 <<<"$(proc_ticks "$CPID")"; read -r su1 ss1 <<<"$(proc_ticks "$SPID")"; drops=$(( $(udp_drops) - drops ))
  hwm=$(status_kb "$CPID" VmHWM)
  # where the client's memory is: anonymous (heap, stacks) against file (its code), and by mapping
  grep -E '^(VmHWM|VmRSS|RssAnon|RssFile|RssShmem)' "/proc/$CPID/status" > "$OUT/mem-$t-$r.txt" 2>/dev/null || true
  cp "/proc/$CPID/smaps" "$OUT/smaps-$t-$r.txt" 2>/dev/null || true
  [ -d "/proc/$CPID" ] || note="client ended during the run"
  teardown
  local u_m u_r u_b d_m d_r d_b
  read -r u_m u_r u_b <<<"$up"; read -r d_m d_r d_b <<<"$down"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$r" "$u_m" "$d_m" "$u_r" "$d_r" \
    "$(secs $((cu1 - cu0)))" "$(secs $((cs1 - cs0)))" "$(secs $((su1 + ss1 - su0 - ss0)))" "${hwm:-n/a}" \
    $((u_b + d_b)) "$note" "$drops" "$load_kb" >> "$OUT/runs.tsv"
  say "$t: up $u_m Mbit/s (retr $u_r), down $d_m Mbit/s (retr $d_r), $drops UDP datagrams dropped at a full receive buffer, client CPU $(secs $((cu1 + cs1 - cu0 - cs0))) s, server CPU $(secs $((su1 + ss1 - su0 - ss0))) s, client VmRSS under load $load_kb kB, client VmHWM ${hwm:-?} kB"
}

# ------------------------------------------------------ roam-roam memory --
rss_run() {
  local n=$((RSS_SECONDS / 5)) i v json=$OUT/iperf-rss.json
  say "roam-roam memory: iperf3 --bidir for $RSS_SECONDS s, the client's VmRSS every 5 s"
  : > "$OUT/rss.tsv"
  if ! setup roam-roam || ! wait_path; then say "memory run: no tunnel"; teardown; return; fi
  sleep "$SETTLE"
  timeout $((RSS_SECONDS + 30)) ip netns exec "$NS_C" iperf3 -c "$LAN_HOST" -t "$RSS_SECONDS" --bidir \
    -J --connect-timeout 5000 > "$json" 2>/dev/null &
  BG_PID=$!
  sleep 1
  for i in $(seq 0 $((n - 1))); do
    v=$(status_kb "$CPID" VmRSS)
    printf '%s\t%s\n' $((1 + 5 * i)) "${v:-n/a}" >> "$OUT/rss.tsv"
    [ "$i" -lt $((n - 1)) ] && sleep 5
  done
  wait "$BG_PID" 2>/dev/null || say "memory run: iperf3 --bidir failed"
  BG_PID=""
  printf 'hwm\t%s\n' "$(status_kb "$CPID" VmHWM)" >> "$OUT/rss.tsv"
  python3 - "$json" >> "$OUT/rss.tsv" <<'PY' || true
import json, sys
e = json.load(open(sys.argv[1]))["end"]
print("mbps\t%.0f\t%.0f" % (e["sum_received"]["bits_per_second"] / 1e6,
                            e["sum_received_bidir_reverse"]["bits_per_second"] / 1e6))
PY
  teardown
}

# ------------------------------------------------------------- profiles --
perf_run() {
  local d rev
  command -v perf >/dev/null 2>&1 || { say "no perf: profile skipped"; return; }
  say "perf record -g of the roam client, $PERF_SECONDS s per direction (roam-roam)"
  if ! setup roam-roam || ! wait_path; then say "profile: no tunnel"; teardown; return; fi
  for d in up down; do
    rev=(); [ "$d" = down ] && rev=(-R)
    timeout $((PERF_SECONDS + 34)) ip netns exec "$NS_C" iperf3 -c "$LAN_HOST" -t $((PERF_SECONDS + 4)) "${rev[@]}" \
      --connect-timeout 5000 > /dev/null 2>&1 &
    BG_PID=$!
    sleep 2
    timeout $((PERF_SECONDS + 30)) perf record -g -p "$CPID" -o "$OUT/perf-$d.data" -- sleep "$PERF_SECONDS" \
      > /dev/null 2> "$OUT/perf-$d.err" || say "perf record ($d) failed: $(tail -n 2 "$OUT/perf-$d.err")"
    wait "$BG_PID" 2>/dev/null || true
    BG_PID=""
    # flat (self time per symbol) and with the call chains
    timeout 300 perf report -i "$OUT/perf-$d.data" --stdio --no-children --sort dso,sym --percent-limit 0.5 \
      -g none > "$OUT/perf-$d.txt" 2>/dev/null || true
    timeout 300 perf report -i "$OUT/perf-$d.data" --stdio --no-children --sort dso,sym --percent-limit 2 \
      > "$OUT/perf-$d-graph.txt" 2>/dev/null || true
    say "profile ($d): $OUT/perf-$d.txt, $OUT/perf-$d-graph.txt"
  done
  teardown
}

# ---------------------------------------------------------- connect time --
# roam: from its `connecting` line to its `connected` line (IKE_SA_INIT + IKE_AUTH with the first
# CHILD SA, both at_ms stamps of roam's own clock); the strongSwan client: the wall clock of
# `swanctl --initiate` on a running charon (what lab.sh up-client prints). Both against the
# strongSwan server with the same PSK, proposals and path; alternating, CONNECT_ROUNDS each.
connect_run() {
  local r ms out line
  : > "$OUT/connect.tsv"
  for r in $(seq 1 "$CONNECT_ROUNDS"); do
    if roam_up "$PROFILE"; then
      out=$OUT/roam-connect.out
      ms=$(awk '/^connecting / { sub(/.* at_ms=/, ""); a = $0 } /^connected / { sub(/.* at_ms=/, ""); if (!b) b = $0 }
                END { if (a && b) print b - a }' "$out")
      printf 'roam\t%s\t%s\n' "$r" "${ms:-}" >> "$OUT/connect.tsv"
    fi
    teardown
    SS_CLIENT=1
    line=$("$LAB_SH" up-client psk 2>&1 >/dev/null | grep -o 'in [0-9]* ms' | tail -n1 || true)
    ms=${line//[!0-9]/}
    printf 'ss\t%s\t%s\n' "$r" "${ms:-}" >> "$OUT/connect.tsv"
    teardown
  done
}

connect_report() {
  [ -s "$OUT/connect.tsv" ] || return 0
  python3 - "$OUT/connect.tsv" <<'PY'
import sys, statistics
t = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) == 3 and f[2].isdigit():
        t.setdefault(f[0], []).append(int(f[2]))
def med(k):
    return statistics.median(t[k]) if t.get(k) else None
r, s = med("roam"), med("ss")
print("Connect wall time to the strongSwan server (median ms; runs): roam %s %s; strongSwan client %s %s"
      % (r, t.get("roam", []), s, t.get("ss", [])))
if r is not None and s:
    print("roam / strongSwan client connect time: %.2f  %s (target <= 1.0)"
          % (r / s, "holds" if r <= s else "misses"))
PY
}

# ------------------------------------------------------------------ table --
report() {
  python3 - "$OUT/runs.tsv" "$OUT/rss.tsv" "$DURATION" "$ROUNDS" "$RSS_SECONDS" <<'PY'
import sys, statistics
runs_path, rss_path, duration, rounds, rss_seconds = sys.argv[1:6]
names = {"roam-roam": "roam -> roam serve", "roam-tcp": "roam -> roam serve over TCP",
         "roam-tls": "roam -> roam serve over TLS/TCP", "roam-ss": "roam -> strongSwan",
         "ss-ss": "strongSwan -> strongSwan", "bt-bt": "boringtun -> boringtun"}
order = ["roam-roam", "roam-tcp", "roam-tls", "roam-ss", "ss-ss", "bt-bt"]
cols = ["up", "down", "retr_up", "retr_down", "c_user", "c_sys", "s_cpu", "hwm", "bytes"]
data, notes, drops, rounds_seen = {}, [], {}, {}
for line in open(runs_path):
    f = line.rstrip("\n").split("\t")
    if len(f) < 11:
        continue
    rounds_seen.setdefault(f[0], []).append(f[1])
    if len(f) > 11 and f[11]:
        notes.append("%s round %s: %s" % (f[0], f[1], f[11]))
    if len(f) > 12:
        try:
            drops.setdefault(f[0], []).append(float(f[12]))
        except ValueError:
            pass
    rec = data.setdefault(f[0], {c: [] for c in cols + ["load"]})
    for c, v in zip(cols + ["load"], f[2:11] + f[13:14]):
        try:
            rec[c].append(float(v))
        except ValueError:
            pass

def mean(t, c):  # the median of the rounds: one round that caught a quiet moment moves it least
    v = data.get(t, {}).get(c, [])
    return statistics.median(v) if v else None

def fmt(x, d=0):
    return "n/a" if x is None else ("%.*f" % (d, x))

print("| tunnel | up Mbit/s | down Mbit/s | retr up | retr down | UDP rcvbuf drops | client CPU s (sys) | server CPU s | client CPU s/GB | client RSS under load MB | client peak RSS MB | runs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for t in order:
    if t not in data:
        continue
    cu, cs, b = mean(t, "c_user"), mean(t, "c_sys"), mean(t, "bytes")
    cpu = None if cu is None or cs is None else cu + cs
    per_gb = None if cpu is None or not b else cpu / (b / 1e9)
    hwm, load = mean(t, "hwm"), mean(t, "load")
    dr = drops.get(t)
    print("| %s | %s | %s | %s | %s | %s | %s (%s) | %s | %s | %s | %s | %d |" % (
        names[t], fmt(mean(t, "up")), fmt(mean(t, "down")), fmt(mean(t, "retr_up")),
        fmt(mean(t, "retr_down")), fmt(statistics.median(dr) if dr else None), fmt(cpu, 2), fmt(cs, 2), fmt(mean(t, "s_cpu"), 2),
        fmt(per_gb, 2), fmt(None if load is None else load / 1024, 1),
        fmt(None if hwm is None else hwm / 1024, 1), len(data[t]["up"])))
print()
rounds = max((len(set(r)) for r in rounds_seen.values()), default=0)
print("Medians of %s round(s), %s s per direction; CPU seconds and UDP drops (RcvbufErrors in roam-c"
      " and roam-s) cover both directions (%s s)." % (rounds, duration, 2 * int(duration)))
for n in notes:
    print("note: " + n)
print()

def ratio(a, b):
    return None if a is None or not b else a / b

def verdict(r, target, le=False):
    if r is None:
        return "n/a"
    ok = r <= target if le else r >= target
    return ("holds" if ok else "misses") + " (target %s %.1f)" % ("<=" if le else ">=", target)

for ref, target in (("bt-bt", 2.0), ("ss-ss", 3.0)):
    for d in ("up", "down"):
        r = ratio(mean("roam-roam", d), mean(ref, d))
        print("roam-roam / %s %-4s: %s  %s" % (ref, d, fmt(r, 2), verdict(r, target)))
for d in ("up", "down"):
    r = ratio(mean("roam-tcp", d), mean("roam-roam", d))
    print("roam over TCP / over UDP %-4s: %s  (reported only)" % (d, fmt(r, 2)))
for d in ("up", "down"):
    r = ratio(mean("roam-tls", d), mean("roam-tcp", d))
    print("roam over TLS / over TCP %-4s: %s  (reported only)" % (d, fmt(r, 2)))
r = ratio(mean("roam-roam", "load"), mean("bt-bt", "load"))
print("roam RSS under load / boringtun's: %s  %s" % (fmt(r, 2), verdict(r, 1.0, le=True)))
r = ratio(mean("roam-roam", "hwm"), mean("bt-bt", "hwm"))
print("roam peak RSS (VmHWM, start-up included) / boringtun's: %s  (reported)" % fmt(r, 2))
for d in ("up", "down"):
    r = ratio(mean("roam-ss", d), mean("ss-ss", d))
    print("roam-ss / ss-ss %-4s: %s  (reported only)" % (d, fmt(r, 2)))
def cpu_per_byte(t):
    cu, cs, b = mean(t, "c_user"), mean(t, "c_sys"), mean(t, "bytes")
    return None if cu is None or cs is None or not b else (cu + cs) / b

r = ratio(cpu_per_byte("roam-roam"), cpu_per_byte("bt-bt"))
print("client CPU per byte, roam / boringtun: %s" % fmt(r, 2))

try:
    rss = [l.rstrip("\n").split("\t") for l in open(rss_path)]
except OSError:
    rss = []
samples = [(int(a), int(b)) for a, b, *_ in rss if a.isdigit() and b.isdigit()]
if samples:
    vals = [v for _, v in samples]
    hwm = next((b for a, b, *_ in rss if a == "hwm"), "n/a")
    mbps = next((l[1:] for l in rss if l[0] == "mbps"), None)
    print()
    print("roam-roam client VmRSS over a %s s iperf3 --bidir (%d samples, every 5 s): first %.1f MB, last %.1f MB, max %.1f MB; VmHWM %s kB%s"
          % (rss_seconds, len(vals), vals[0] / 1024, vals[-1] / 1024, max(vals) / 1024, hwm,
             "" if not mbps else "; %s / %s Mbit/s up / down" % (mbps[0], mbps[1])))
    print("samples (s: kB): " + ", ".join("%d: %d" % s for s in samples))
PY
}

# how much of the code layout list the measured binary still has (its names go stale with new
# crate versions; docs/PERFORMANCE.md, "Memory")
order_match() {
  python3 - "$ROAM_BIN" "$REPO/harness/link/roam.order" <<'PY' 2>/dev/null || echo "unknown"
import subprocess, sys
nm = subprocess.run(["nm", "--defined-only", sys.argv[1]], capture_output=True, text=True, check=True).stdout
defined = {f[2] for f in (l.split() for l in nm.splitlines()) if len(f) == 3}
listed = open(sys.argv[2]).read().split()
print("%d of %d listed functions found in the binary" % (sum(1 for n in listed if n in defined), len(listed)))
PY
}

header() {
  local cpu rev
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
  echo "Tunnel throughput, $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) CPUs ($cpu), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "iperf3 TCP, 1 stream, $DURATION s each way, roam-c -> $LAN_HOST (roam-l); ESP $ESP with PSK; WireGuard MTU ${WG_MTU:-1420}"
  echo "roam's code layout: $(order_match) (harness/link/roam.order; scripts/order-file.sh renews it)"
  echo "roam $rev ($ROAM_BIN), strongSwan $(/usr/lib/ipsec/charon --version 2>/dev/null | grep -o '[0-9]\+\.[0-9.]\+' | head -n1 || echo '?') kernel-libipsec, $("$BORINGTUN_BIN" --version 2>/dev/null || echo 'boringtun ?'), $(iperf3 --version | head -n1 | cut -d' ' -f1-2)"
}

# ------------------------------------------------------------------- main --
if [ "${1:-}" = report ]; then
  OUT=${2:?report DIR}
  [ -s "$OUT/runs.tsv" ] || fail "no $OUT/runs.tsv"
  report; connect_report; exit 0
fi
install_tools
mkdir -p "$OUT"
: > "$OUT/runs.tsv"; : > "$OUT/rss.tsv"

# the lab is shared: a roam someone runs by hand in roam-c would collide with our TUN and routes
for p in $(ip netns pids "$NS_C" 2>/dev/null); do
  if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q ' connect '; then
    fail "a roam connect (pid $p) runs in $NS_C; stop it first"
  fi
done
"$LAB_SH" up >/dev/null 2>"$OUT/lab-up.err" || { tail -n 20 "$OUT/lab-up.err" >&2; fail "lab.sh up failed"; }
"$LAB_SH" down-client >/dev/null 2>&1 || true
"$LAB_SH" wg-down >/dev/null 2>&1 || true
PROFILE=$("$LAB_SH" profile psk --esp "$ESP" --out "$OUT/psk.toml")
PROFILE_TCP=$("$LAB_SH" profile psk --esp "$ESP" --transport tcp --out "$OUT/psk-tcp.toml")
PROFILE_TLS=$("$LAB_SH" profile psk --esp "$ESP" --transport tcp --tcp-tls --out "$OUT/psk-tls.toml")

read -r -a ORDER <<<"$TUNNELS"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then list=("${ORDER[@]}"); else
    list=(); for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do list+=("${ORDER[$i]}"); done
  fi
  for t in "${list[@]}"; do run_one "$t" "$r"; done
done
if [ "$RSS_SECONDS" -gt 0 ]; then rss_run; fi
if [ "$CONNECT_ROUNDS" -gt 0 ]; then connect_run; fi
if [ "$PERF_SECONDS" -gt 0 ]; then perf_run; fi

{ header; echo; report; echo; connect_report; } | tee "$OUT/table.md"
say "results: $OUT (runs.tsv, rss.tsv, table.md, iperf JSON, perf-*.txt when PERF_SECONDS > 0)"
