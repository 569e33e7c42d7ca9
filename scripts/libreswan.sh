#!/usr/bin/env bash
# scripts/libreswan.sh -- a private libreswan responder (pluto) in the lab's server namespace,
# for interop checks of IKE over TCP (RFC 9329) against a second implementation.
#
# Debian's libreswan conflicts with strongswan-libcharon (which the lab needs), so it is not
# installed: the .deb is fetched with `apt-get download` and unpacked with `dpkg -x` into a
# cache directory, and pluto runs from there with its own config, NSS database, run directory
# and log, stopped by PID only. This kernel has no ESP, so pluto can authenticate an IKE SA
# but cannot install a CHILD SA (errno 38); docs/lab.md (IKE over TCP against libreswan)
# says what it does then. It has no espintcp either, the TCP upper layer protocol pluto
# switches its IKE-over-TCP sockets to: scripts/libreswan-espintcp.c, preloaded into pluto
# only, does that framing in user space.
#
# Usage (as root):
#   libreswan.sh deps        apt-get the runtime libraries pluto links against (those that do
#                            not conflict with strongSwan; the package itself is never installed)
#   libreswan.sh fetch       download and unpack libreswan into $LIBRESWAN_CACHE once, and
#                            build the espintcp stand-in there (idempotent; fails loudly)
#   libreswan.sh up          pluto in roam-s in place of the server charon (lab.sh up first;
#                            this stops the charon): PSK responder for the lab's PSK identity,
#                            UDP 500/4500 and TCP 4500 (listen-tcp, enable-tcp=yes)
#   libreswan.sh down        stop pluto by PID (whack --shutdown, then SIGTERM/SIGKILL) and
#                            flush the XFRM policies it left in roam-s; charon stays stopped
#                            (lab.sh up brings it back)
#   libreswan.sh pid         the pid of the running pluto (exit 1 if none)
#   libreswan.sh whack ARGS  whack against our pluto (e.g. --briefstatus, --globalstatus)
#   libreswan.sh env         LIBRESWAN_*=... (unquoted): log path, pid, cache, version
#
# Environment: LAB (default /tmp/roam-lab, as lab.sh), LIBRESWAN_CACHE (default
# <repo>/target/libreswan), PLUTO_DEBUG (pluto's plutodebug=, default "base": its IKETCP
# lines name the TCP connections), LIBRESWAN_VERSION (the Debian version to fetch, default:
# apt's candidate), LIBRESWAN_ESPINTCP (auto: the stand-in unless the kernel lists espintcp
# in /proc/sys/net/ipv4/tcp_available_ulp; shim; kernel), CC (default cc, else clang).
set -euo pipefail
# never hand the lab lock on to a daemon
. "$(dirname "$(readlink -f "$0")")/lab-lock.sh"

SELF=$(readlink -f "$0")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
LAB=${LAB:-/tmp/roam-lab}
LABSH=$REPO/scripts/lab.sh
NS_S=roam-s
CACHE=${LIBRESWAN_CACHE:-$REPO/target/libreswan}
ROOT=$CACHE/root
LIBEXEC=$ROOT/usr/libexec/ipsec
STATE=$LAB/libreswan
PLUTO_DEBUG=${PLUTO_DEBUG:-base}
SHIM_SRC=$REPO/scripts/libreswan-espintcp.c
SHIM=$CACHE/libreswan-espintcp.so

# The lab's server side (kept in step with scripts/lab.sh).
SERVER_ADDR=198.51.100.1
SERVER_ID=${SERVER_ID:-vpn.example.org}
PSK=${PSK:-roam-lab-psk-2f7c1e9a0b4d}
PSK_ID=${PSK_ID:-psk-client@example.org}
POOL4=${LIBRESWAN_POOL:-198.18.0.100-198.18.0.199}
DNS4=203.0.113.53

# What pluto links against, minus libc-level packages every Debian has: installed normally
# (none of them conflicts with strongSwan).
RUNTIME_DEPS=(libnss3 libnss3-tools libnspr4 libunbound8 libldns3 libevent-core-2.1-7
  libevent-pthreads-2.1-7 libcurl3-nss libcap-ng0 libaudit1 libldap-2.5-0 libpam0g)

fail() { echo "libreswan: error: $*" >&2; exit 1; }
say() { echo "[libreswan] $*" >&2; }
usage() { sed -n "2,/^set -euo/p" "$SELF" | grep "^#" | sed "s/^# \{0,1\}//"; }
require_root() { [ "$(id -u)" -eq 0 ] || fail "needs root"; }
in_ns() { ip netns exec "$NS_S" "$@"; }

wait_for() { # SECONDS COMMAND...: poll every 0.1 s until COMMAND succeeds
  local limit=$(( $1 * 10 )) i=0; shift
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -ge "$limit" ] && return 1
    sleep 0.1
  done
}

# ------------------------------------------------------------------ install --
missing_deps() {
  local p
  for p in "${RUNTIME_DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
  done
}

apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 "$@"; }

# Fresh machines may have no package lists yet: one `apt-get update`, then the step again.
APT_UPDATED=0
apt_retry() { # COMMAND...
  "$@" && return 0
  [ "$APT_UPDATED" = 1 ] && return 1
  APT_UPDATED=1
  apt_get update -q >&2 || return 1
  "$@"
}

do_deps() {
  local miss
  miss=$(missing_deps)
  [ -z "$miss" ] && return 0
  require_root
  # shellcheck disable=SC2086
  apt_retry apt_get install -y -q --no-install-recommends $miss ||
    fail "apt-get install of the libraries ($miss) failed"
}

candidate() {
  local v
  v=$(apt-cache policy libreswan 2>/dev/null | awk '/Candidate:/ {print $2}')
  [ -n "$v" ] && [ "$v" != "(none)" ] && echo "$v"
}

# Unpacked and usable: pluto runs (--version) with every library it needs.
fetched() {
  [ -x "$LIBEXEC/pluto" ] && [ -x "$LIBEXEC/whack" ] && [ -x "$LIBEXEC/addconn" ] &&
    [ -s "$CACHE/version" ] && ! ldd "$LIBEXEC/pluto" | grep -q 'not found'
}

# The espintcp stand-in, rebuilt when its source is newer.
build_shim() {
  [ -s "$SHIM" ] && [ "$SHIM" -nt "$SHIM_SRC" ] && return 0
  local cc=${CC:-}
  if [ -z "$cc" ]; then
    if command -v cc >/dev/null; then cc=cc; elif command -v clang >/dev/null; then cc=clang; fi
  fi
  [ -n "$cc" ] || fail "no C compiler (cc or clang) for $SHIM_SRC"
  mkdir -p "$CACHE"
  "$cc" -shared -fPIC -O2 -Wall -Werror -o "$SHIM.tmp" "$SHIM_SRC" -ldl ||
    fail "building $SHIM_SRC failed"
  mv "$SHIM.tmp" "$SHIM"
  say "built $SHIM"
}

# Whether pluto gets the stand-in (LIBRESWAN_ESPINTCP=auto|shim|kernel).
use_shim() {
  case ${LIBRESWAN_ESPINTCP:-auto} in
    shim) return 0 ;;
    kernel) return 1 ;;
    auto) ! grep -qw espintcp /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null ;;
    *) fail "LIBRESWAN_ESPINTCP must be auto, shim or kernel" ;;
  esac
}

do_fetch() {
  build_shim
  if fetched; then return 0; fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then fail "needs apt-get and dpkg (Debian)"; fi
  do_deps
  local version=${LIBRESWAN_VERSION:-} tmp deb
  [ -n "$version" ] || version=$(apt_retry candidate) ||
    fail "apt knows no libreswan package (a Debian 12 'main' source?)"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  # apt-get download writes into the current directory (as root it warns that it runs unsandboxed)
  (cd "$tmp" && apt-get download -q "libreswan=$version" >"$tmp/download.log" 2>&1) ||
    { cat "$tmp/download.log" >&2; rm -rf "$tmp"; fail "apt-get download libreswan=$version failed"; }
  deb=$(find "$tmp" -maxdepth 1 -name 'libreswan_*.deb' | head -n 1)
  [ -n "$deb" ] || { rm -rf "$tmp"; fail "apt-get download left no libreswan .deb"; }
  dpkg -x "$deb" "$tmp/root" || { rm -rf "$tmp"; fail "dpkg -x $deb failed"; }
  rm -rf "$ROOT"; mv "$tmp/root" "$ROOT"; rm -rf "$tmp"
  echo "$version" > "$CACHE/version"
  if ldd "$LIBEXEC/pluto" | grep 'not found' >&2; then
    fail "pluto misses the libraries above (libreswan.sh deps)"
  fi
  "$LIBEXEC/pluto" --version >/dev/null 2>&1 || fail "the unpacked pluto does not run"
  say "libreswan $version unpacked in $ROOT"
}

# ------------------------------------------------------------------- pluto --
pluto_pid() { # the pid of our pluto, checked by name and by its --rundir
  local f=$STATE/run/pluto.pid p
  [ -s "$f" ] || return 1
  p=$(cat "$f")
  [[ $p =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = pluto ] &&
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF -- "--rundir $STATE/run" || return 1
  echo "$p"
}

run_whack() { timeout 30 ip netns exec "$NS_S" "$LIBEXEC/whack" --rundir "$STATE/run" "$@"; }

write_config() {
  mkdir -p "$STATE/run" "$STATE/nss" "$STATE/ipsec.d"
  chmod 700 "$STATE"
  cat > "$STATE/ipsec.conf" <<EOF
# written by scripts/libreswan.sh: a PSK road-warrior responder, IKE also over TCP (RFC 9329)
config setup
	listen-tcp=yes
	plutodebug="$PLUTO_DEBUG"
	dnssec-enable=no
	uniqueids=no

conn roam-psk
	ikev2=insist
	authby=secret
	left=$SERVER_ADDR
	leftid=@$SERVER_ID
	leftsubnet=0.0.0.0/0
	leftupdown=/bin/true
	right=%any
	rightid=$PSK_ID
	rightaddresspool=$POOL4
	modecfgdns=$DNS4
	narrowing=yes
	ike=aes_gcm256-sha2_384;dh20
	esp=aes_gcm256
	fragmentation=yes
	mobike=no
	enable-tcp=yes
	tcp-remoteport=4500
	auto=add
EOF
  cat > "$STATE/ipsec.secrets" <<EOF
@$SERVER_ID $PSK_ID : PSK "$PSK"
EOF
  chmod 600 "$STATE/ipsec.conf" "$STATE/ipsec.secrets"
  # an empty NSS database (the `ipsec initnss` step): pluto refuses to start without one
  [ -s "$STATE/nss/cert9.db" ] || certutil -N -d "sql:$STATE/nss" --empty-password ||
    fail "certutil -N (libnss3-tools) failed"
}

do_up() {
  require_root
  do_fetch
  ip netns list | awk '{print $1}' | grep -qx "$NS_S" || fail "no lab (lab.sh up first)"
  if pluto_pid >/dev/null; then do_down; fi
  # pluto takes UDP 500/4500 in roam-s, where the server charon listens
  "$LABSH" server-stop
  write_config
  rm -f "$STATE/run/pluto.pid" "$STATE/run/pluto.ctl"
  : > "$STATE/pluto.log"; : > "$STATE/espintcp.log"
  # pluto runs /usr/libexec/ipsec/addconn (a compiled-in path) to load the conns: in the
  # private mount namespace of `ip netns exec`, the unpacked /usr/libexec is bind-mounted over
  # the host's (for pluto only). sh execs pluto: $! is pluto's PID (also in run/pluto.pid).
  local preload=""
  if use_shim; then preload=$SHIM; fi
  # shellcheck disable=SC2016
  setsid nohup ip netns exec "$NS_S" sh -c 'mount --bind "$1" /usr/libexec && shift && exec "$@"' \
    pluto-in-ns "$ROOT/usr/libexec" env LD_PRELOAD="$preload" \
    LIBRESWAN_ESPINTCP_LOG="$STATE/espintcp.log" "$LIBEXEC/pluto" --nofork \
    --config "$STATE/ipsec.conf" --secretsfile "$STATE/ipsec.secrets" \
    --ipsecdir "$STATE/ipsec.d" --nssdir "$STATE/nss" --rundir "$STATE/run" \
    --dumpdir "$STATE/run" --logfile "$STATE/pluto.log" --no-dnssec \
    > "$STATE/pluto.out" 2>&1 < /dev/null &
  if ! wait_for 10 test -S "$STATE/run/pluto.ctl" || ! pluto_pid >/dev/null; then
    tail -n 30 "$STATE/pluto.out" "$STATE/pluto.log" >&2 2>/dev/null || true
    fail "pluto did not come up within 10 s"
  fi
  # pluto loads the auto=add conn itself (through addconn) when it starts
  wait_for 10 sh -c "'$LIBEXEC/whack' --rundir '$STATE/run' --status 2>/dev/null | grep -q '\"roam-psk\":'" ||
    { tail -n 30 "$STATE/pluto.log" >&2; fail "pluto did not load conn roam-psk"; }
  run_whack --listen > "$STATE/listen.out" 2>&1 ||
    { cat "$STATE/listen.out" >&2; fail "whack --listen failed"; }
  wait_for 10 sh -c "ip netns exec $NS_S ss -Hltn 'sport = :4500' | grep -q LISTEN" ||
    { tail -n 30 "$STATE/pluto.log" >&2; fail "pluto does not listen on TCP 4500"; }
  say "pluto $(cat "$CACHE/version") up in $NS_S, pid $(pluto_pid), log $STATE/pluto.log, espintcp: ${preload:-kernel}"
}

do_down() {
  require_root
  local p
  if p=$(pluto_pid); then
    run_whack --shutdown >/dev/null 2>&1 || true
    if ! wait_for 5 sh -c "! test -d /proc/$p"; then
      kill -TERM "$p" 2>/dev/null || true
      wait_for 5 sh -c "! test -d /proc/$p" || kill -KILL "$p" 2>/dev/null || true
    fi
    say "pluto (pid $p) stopped"
  fi
  rm -f "$STATE/run/pluto.pid"
  # pluto's bypass policies (IPv6 neighbour discovery) outlive it
  if ip netns list | awk '{print $1}' | grep -qx "$NS_S"; then
    in_ns ip xfrm policy flush 2>/dev/null || true
    in_ns ip xfrm state flush 2>/dev/null || true
  fi
}

do_env() {
  local p; p=$(pluto_pid 2>/dev/null) || p=""
  cat <<EOF
LIBRESWAN_CACHE=$CACHE
LIBRESWAN_VERSION=$(cat "$CACHE/version" 2>/dev/null || true)
LIBRESWAN_DIR=$STATE
LIBRESWAN_LOG=$STATE/pluto.log
LIBRESWAN_PID=$p
LIBRESWAN_CONN=roam-psk
LIBRESWAN_POOL=$POOL4
LIBRESWAN_OUT=$STATE/pluto.out
LIBRESWAN_ESPINTCP_LOG=$STATE/espintcp.log
EOF
}

cmd=${1:-help}; [ $# -gt 0 ] && shift
case $cmd in
  deps) do_deps ;;
  fetch) do_fetch ;;
  up) do_up ;;
  down) do_down ;;
  pid) pluto_pid || fail "no pluto running" ;;
  whack) run_whack "$@" ;;
  env) do_env ;;
  help|-h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
