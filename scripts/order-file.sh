#!/usr/bin/env bash
# scripts/order-file.sh -- writes harness/link/roam.order: the functions `roam connect` runs, which
# harness/build.rs hands to lld so that they sit side by side at the start of .text
# (docs/PERFORMANCE.md, "Memory"). Root (the lab); not part of the test command.
#
# Usage: sudo scripts/order-file.sh
#   ROAM_BIN   roam binary to profile (target/release/roam, built first unless BUILD=0)
#   SECONDS_EACH  iperf3 seconds each way through the tunnel, in each run (3)
#   PERF_RUNS     native runs under perf per transport (3): each adds what ran only there
#
# It runs `roam connect` in the lab against `roam serve` (PSK, aes256gcm16) over UDP and over TLS
# on TCP, each under valgrind's callgrind and under perf record: connect, ping, an iperf3 upload
# and download, SIGINT. Every function of the binary that callgrind saw execute is listed, with
# those only perf shows (code chosen by CPU features valgrind lacks), in three parts: what runs
# on UDP once the tunnel is up and settled (callgrind dumps its counts 3 s after the `tun` line
# and again before the SIGINT; perf's extra functions are the data path's crypto), then what
# only start-up and shutdown run on UDP, then what only TLS runs, each part sorted by name.
# `roam connect` drops the pages of its start-up code 2 s after the tunnel is up
# (harness/src/memory.rs): what keeps running then sits in the fewest pages. Symbol names carry
# a hash of their crate's build (version, features, dependencies), not of the code: the list
# stays valid across code changes and goes stale with a new crate version or compiler; bench.sh
# reports how much of it the binary it measures still matches. Run it again then.
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
LAB_SH=$REPO/scripts/lab.sh
export LAB=${LAB:-/tmp/roam-lab}
ROAM_BIN=${ROAM_BIN:-$REPO/target/release/roam}
SECONDS_EACH=${SECONDS_EACH:-3}
PERF_RUNS=${PERF_RUNS:-3}
ORDER=$REPO/harness/link/roam.order
NS_C=roam-c LAN_HOST=203.0.113.2
WORK=$(mktemp -d /tmp/roam-order.XXXXXX)

fail() { echo "order-file: error: $*" >&2; exit 1; }
say() { echo "[order-file] $*" >&2; }

[ "$(id -u)" = 0 ] || fail "needs root (the lab)"
case $SECONDS_EACH in [1-9] | [1-5][0-9] | 60) ;; *) fail "SECONDS_EACH: 1..60" ;; esac
case $PERF_RUNS in [1-9]) ;; *) fail "PERF_RUNS: 1..9" ;; esac
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null
command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null
command -v iperf3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3 >/dev/null
if [ "${BUILD:-1}" = 1 ]; then
  (cd "$REPO" && cargo build --release -p roam-harness)
fi
[ -x "$ROAM_BIN" ] || fail "no $ROAM_BIN"

CPID=""
cleanup() {
  if [ -n "$CPID" ] && [ -d "/proc/$CPID" ]; then kill -KILL "$CPID" 2>/dev/null || true; fi
  "$LAB_SH" serve-down >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$LAB_SH" up >/dev/null 2>"$WORK/up.err" || { tail -n 20 "$WORK/up.err" >&2; fail "lab.sh up failed"; }
"$LAB_SH" serve-up psk >/dev/null 2>"$WORK/serve.err" || { tail -n 20 "$WORK/serve.err" >&2; fail "serve-up failed"; }
"$LAB_SH" iperf >/dev/null 2>&1
PROFILE_UDP=$("$LAB_SH" profile psk --esp aes256gcm16 --out "$WORK/psk.toml")
PROFILE_TLS=$("$LAB_SH" profile psk --esp aes256gcm16 --transport tcp --tcp-tls --out "$WORK/psk-tls.toml")

# connect_run PROFILE LABEL WRAPPER...: roam connect under WRAPPER in roam-c: connect, ping,
# iperf3 each way, SIGINT to the wrapper and to roam (found by its command line)
connect_run() {
  local profile=$1 label=$2 dump=${DUMP_AT_UP:-} q; shift 2
  say "roam connect ($(basename "$profile")) under $label: connect, ping, iperf3 ${SECONDS_EACH} s each way"
  RUST_LOG=warn ip netns exec "$NS_C" "$@" "$ROAM_BIN" connect --profile "$profile" \
    > "$WORK/connect.out" 2>&1 < /dev/null &
  CPID=$!
  for _ in $(seq 1 600); do
    grep -q '^tun ' "$WORK/connect.out" && break
    [ -d "/proc/$CPID" ] || { tail -n 20 "$WORK/connect.out" >&2; fail "roam connect ended"; }
    sleep 0.1
  done
  grep -q '^tun ' "$WORK/connect.out" || fail "no tun line within 60 s"
  # callgrind: start-up (until 3 s after the tunnel came up: roam trims at 2 s) goes to OUT.1,
  # the tunnel's life to OUT.2, shutdown to OUT
  if [ -n "$dump" ]; then
    sleep 3
    callgrind_control -d "$CPID" >/dev/null || fail "callgrind_control -d failed"
  fi
  ip netns exec "$NS_C" ping -n -c 3 -W 2 "$LAN_HOST" >/dev/null || fail "no ping through the tunnel"
  for dir in "" -R; do
    timeout $((SECONDS_EACH + 40)) ip netns exec "$NS_C" iperf3 -c "$LAN_HOST" -t "$SECONDS_EACH" $dir \
      >/dev/null || fail "iperf3 $dir failed"
  done
  if [ -n "$dump" ]; then callgrind_control -d "$CPID" >/dev/null || fail "callgrind_control -d failed"; fi
  kill -INT "$CPID" 2>/dev/null || true
  for q in $(ip netns pids "$NS_C"); do
    if tr '\0' ' ' < "/proc/$q/cmdline" 2>/dev/null | grep -q "^$ROAM_BIN connect "; then kill -INT "$q"; fi
  done
  for _ in $(seq 1 300); do [ -d "/proc/$CPID" ] || break; sleep 0.1; done
  [ -d "/proc/$CPID" ] && fail "roam connect did not end within 30 s of SIGINT"
  CPID=""
  sleep 1 # iperf3 -s takes a moment before it accepts the next test
}

# callgrind sees every function that runs, but valgrind's CPU lacks some extensions (VAES,
# SHA-NI), so ring and sha2 pick other code there than natively: a native run under perf adds
# the functions that run often enough to be sampled and those that take a page fault (the first
# to run in a page the list left out; a second run of this script finds the rest of such pages).
# Runs differ (what the kernel batches, retransmits, timers), so there are several.
# Over UDP (the common case) and over TLS on TCP (RFC 9329, where UDP is blocked).
for transport in udp tls; do
  case $transport in udp) profile=$PROFILE_UDP ;; tls) profile=$PROFILE_TLS ;; esac
  DUMP_AT_UP=1 connect_run "$profile" callgrind valgrind --tool=callgrind \
    --callgrind-out-file="$WORK/callgrind-$transport.out" \
    --dump-instr=no --compress-strings=no --compress-pos=no --demangle=no
  : > "$WORK/perf-$transport.syms"
  for run in $(seq 1 "$PERF_RUNS"); do
    connect_run "$profile" "perf ($run of $PERF_RUNS)" perf record -q -e cpu-clock/freq=20000/ \
      -e page-faults/period=1/ -o "$WORK/perf.data"
    perf report -i "$WORK/perf.data" --no-demangle --no-children --sort dso,symbol -F dso,sym \
      --stdio 2>/dev/null | awk -v bin="$(basename "$ROAM_BIN")" '$1 == bin && $2 == "[.]" { print $3 }' \
      >> "$WORK/perf-$transport.syms"
  done
done

# Three parts, each sorted by name (the order within a part does not matter for memory; a stable
# one keeps the file's diffs to what changed): what the UDP tunnel runs once up and settled, what
# only its start-up and shutdown run (dropped by the trim), what only TLS on TCP runs (a client
# on UDP never maps it).
python3 - "$ROAM_BIN" "$ORDER" "$WORK" <<'PY'
import re, subprocess, sys
binary, order, work = sys.argv[1:4]
nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
defined = {f[2] for f in (l.split() for l in nm.splitlines()) if len(f) == 3 and f[1] in "tTwW"}

def callgrind_functions(path):
    # "ob=" names the object of the "fn=" lines after it; "'N" marks a recursion depth
    names, obj = set(), None
    for line in open(path):
        if line.startswith("ob="):
            obj = line[3:].strip()
        elif line.startswith("fn=") and obj == binary:
            names.add(re.sub(r"'\d+$", "", line[3:].strip()))
    return names

def ran_and_sampled(transport):
    # (ran once up, ran at all, perf's samples) of one transport
    start, up, end = (callgrind_functions("%s/callgrind-%s.out%s" % (work, transport, part))
                      for part in (".1", ".2", ""))
    sampled = set(open("%s/perf-%s.syms" % (work, transport)).read().split())
    return up, start | up | end, sampled

seen, parts = set(), []
def add(label, names):
    part = sorted(names & defined - seen)
    seen.update(part)
    parts.append(part)
    print("[order-file] %s: %d functions" % (label, len(part)), file=sys.stderr)

up, ran, sampled = ran_and_sampled("udp")
add("UDP, once the tunnel is up", up | (sampled - ran))
add("UDP, start-up and shutdown only", ran | sampled)
up, ran, sampled = ran_and_sampled("tls")
add("TLS on TCP only", ran | sampled)
with open(order, "w") as f:
    f.write("".join(n + "\n" for part in parts for n in part))
print("[order-file] %d functions -> %s" % (len(seen), order), file=sys.stderr)
PY
rm -rf "$WORK"
say "rebuild to apply it: cargo build --release -p roam-harness"
