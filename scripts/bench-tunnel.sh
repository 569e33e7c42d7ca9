#!/usr/bin/env bash
# scripts/bench-tunnel.sh -- tunnel throughput in the lab, for the notes (not a test).
#
# Usage (as root): scripts/bench-tunnel.sh
#   ROAM_BIN   roam binary (default target/release/roam: build it with
#              `cargo build --release -p roam-harness`)
#   DURATION   seconds per iperf3 run (default 10)
#   ESP        ESP proposal of every path (default aes256gcm16)
#
# In one run, with the same LAN host and iperf3 server (203.0.113.2 in roam-l), TCP, one
# stream, DURATION seconds each way (upload: client -> LAN; download: -R):
#   1. strongSwan client -> strongSwan server (the reference: `lab.sh up-client psk`)
#   2. roam connect (TUN) -> strongSwan server
#   3. roam connect (TUN) -> roam serve (`lab.sh serve-up psk`)
# and prints Mbit/s (receiver side) and the ratio of each to strongSwan-to-strongSwan.
# Both strongSwan daemons use userspace ESP (kernel-libipsec): see docs/lab.md.
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
LAB_SH=$REPO/scripts/lab.sh
export ROAM_BIN=${ROAM_BIN:-$REPO/target/release/roam}
DURATION=${DURATION:-10}
ESP=${ESP:-aes256gcm16}
LAN_HOST=203.0.113.2
NS_C=roam-c
LAB=${LAB:-/tmp/roam-lab}

fail() { echo "bench-tunnel: error: $*" >&2; exit 1; }
say() { echo "[bench] $*" >&2; }
[ "$(id -u)" -eq 0 ] || fail "needs root"
[[ $DURATION =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 1 ] || fail "DURATION must be a number of seconds"
command -v python3 >/dev/null || fail "needs python3 (to read iperf3 -J)"

# the lab is shared: a roam someone runs by hand in roam-c would collide with our TUN and routes
for p in $(ip netns pids "$NS_C" 2>/dev/null); do
  if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q ' connect '; then
    fail "a roam connect (pid $p) runs in $NS_C; stop it first"
  fi
done

"$LAB_SH" up >/dev/null
"$LAB_SH" iperf >/dev/null
WORK=$(mktemp -d "$LAB/bench.XXXXXX")
ROAM_PID="" SERVE_UP=0
cleanup() {
  if [ -n "$ROAM_PID" ] && [ -d "/proc/$ROAM_PID" ]; then
    kill -TERM "$ROAM_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -d "/proc/$ROAM_PID" ] || break; sleep 0.1; done
    kill -KILL "$ROAM_PID" 2>/dev/null || true
  fi
  ROAM_PID=""
  "$LAB_SH" down-client >/dev/null 2>&1 || true
  if [ "$SERVE_UP" = 1 ]; then "$LAB_SH" serve-down >/dev/null 2>&1 || true; SERVE_UP=0; fi
}
trap 'cleanup; rm -rf "$WORK"' EXIT

# one iperf3 run from roam-c; prints the receiver's Mbit/s or "n/a"
measure() { # up|down
  local rev=() json=$WORK/iperf.json
  # (--rcv-timeout is for the receiving side only: the client with -R)
  [ "$1" = down ] && rev=(-R --rcv-timeout 15000)
  if ! timeout $((DURATION + 30)) ip netns exec "$NS_C" iperf3 -c "$LAN_HOST" -t "$DURATION" "${rev[@]}" \
      -J --connect-timeout 5000 > "$json" 2>/dev/null; then
    say "iperf3 $1 failed: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error","?"))' "$json" 2>/dev/null || echo '?')"
    echo n/a; return
  fi
  python3 -c 'import json,sys; print("%.0f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e6))' "$json" 2>/dev/null || echo n/a
}

declare -A UP DOWN NOTE
run_path() { # KEY
  UP[$1]=$(measure up); DOWN[$1]=$(measure down)
  say "$1: upload ${UP[$1]} Mbit/s, download ${DOWN[$1]} Mbit/s"
}

# roam connect with its TUN in roam-c, in the background; waits for the tun line
roam_up() { # PROFILE
  local out=$WORK/roam.out
  RUST_LOG=${RUST_LOG:-warn} ip netns exec "$NS_C" "$ROAM_BIN" connect --profile "$1" > "$out" 2>&1 < /dev/null &
  ROAM_PID=$!
  for _ in $(seq 1 200); do
    grep -q '^tun ' "$out" && return 0
    [ -d "/proc/$ROAM_PID" ] || break
    sleep 0.1
  done
  say "roam connect did not print its tun line within 20 s:"; tail -n 20 "$out" >&2
  return 1
}

roam_usable() {
  [ -x "$ROAM_BIN" ] || { echo "no binary at $ROAM_BIN"; return 1; }
  "$ROAM_BIN" connect --help 2>/dev/null | grep -q -- --no-tun || { echo "$ROAM_BIN has no client TUN"; return 1; }
}

# 1. strongSwan -> strongSwan
say "strongSwan client -> strongSwan server (ESP $ESP)"
if ESP_PROPOSALS_OVERRIDE=$ESP "$LAB_SH" up-client psk >/dev/null 2>&1; then
  run_path ss
else
  UP[ss]=n/a; DOWN[ss]=n/a; NOTE[ss]="up-client failed"
fi
"$LAB_SH" down-client >/dev/null 2>&1 || true

# 2. roam -> strongSwan
PROFILE=$("$LAB_SH" profile psk --esp "$ESP" --out "$WORK/psk.toml")
if why=$(roam_usable); then
  say "roam -> strongSwan server ($ROAM_BIN)"
  if roam_up "$PROFILE"; then run_path roam-ss; else UP[roam-ss]=n/a; DOWN[roam-ss]=n/a; NOTE[roam-ss]="no tunnel"; fi
  cleanup
else
  UP[roam-ss]=n/a; DOWN[roam-ss]=n/a; NOTE[roam-ss]=$why
fi

# 3. roam -> roam serve
if why=$(roam_usable) && { "$ROAM_BIN" serve --help >/dev/null 2>&1 || { why="$ROAM_BIN has no serve"; false; }; }; then
  say "roam -> roam serve ($ROAM_BIN)"
  if "$LAB_SH" serve-up psk >/dev/null; then
    SERVE_UP=1
    if roam_up "$PROFILE"; then run_path roam-roam; else UP[roam-roam]=n/a; DOWN[roam-roam]=n/a; NOTE[roam-roam]="no tunnel"; fi
  else
    UP[roam-roam]=n/a; DOWN[roam-roam]=n/a; NOTE[roam-roam]="serve-up failed"
  fi
  cleanup
else
  UP[roam-roam]=n/a; DOWN[roam-roam]=n/a; NOTE[roam-roam]=$why
fi

ratio() { # VALUE REF
  [[ $1 =~ ^[0-9]+$ ]] && [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo n/a; return; }
  python3 -c 'import sys; print("%.2f" % (int(sys.argv[1]) / int(sys.argv[2])))' "$1" "$2"
}

echo
echo "Tunnel throughput: iperf3 TCP, 1 stream, ${DURATION} s each way, roam-c <-> $LAN_HOST (roam-l);"
echo "ESP $ESP, PSK; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); roam: $ROAM_BIN"
echo
printf '| %-32s | %14s | %16s | %12s | %14s |\n' "path" "upload Mbit/s" "download Mbit/s" "upload / ss" "download / ss"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..34})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..18})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..16})"
for k in ss roam-ss roam-roam; do
  case $k in
    ss) name="strongSwan -> strongSwan" ;;
    roam-ss) name="roam -> strongSwan" ;;
    roam-roam) name="roam -> roam serve" ;;
  esac
  printf '| %-32s | %14s | %16s | %12s | %14s |' "$name" "${UP[$k]}" "${DOWN[$k]}" \
    "$(ratio "${UP[$k]}" "${UP[ss]}")" "$(ratio "${DOWN[$k]}" "${DOWN[ss]}")"
  [ -n "${NOTE[$k]:-}" ] && printf ' (%s)' "${NOTE[$k]}"
  echo
done
