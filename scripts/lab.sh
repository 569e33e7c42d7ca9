#!/usr/bin/env bash
# scripts/lab.sh -- Roam's interop lab: a real strongSwan IKEv2 responder
# (userspace ESP through kernel-libipsec) in network namespaces, plus a
# strongSwan reference initiator, a NAT box and a protected LAN.
#
# Usage (as root; docs/lab.md has the details):
#   lab.sh deps                     install the Debian packages the lab needs
#   lab.sh up                       namespaces, PKI, server config, server charon (idempotent;
#                                   KEY_TYPE=rsa|ecdsa|ed25519 picks the server/CA key type)
#   lab.sh down                     stop everything we started, delete namespaces and $LAB
#   lab.sh status                   SAs of both daemons
#   lab.sh swanctl server|client ARGS...   swanctl against one of the daemons
#   lab.sh logs server|client [N]   last N lines of a charon log
#   lab.sh env [--raw]              ROAM_LAB_*=... (shell-sourceable; --raw: unquoted): addresses,
#                                   IDs, secrets, file paths
#   lab.sh up-client MODE [SERVER]  strongSwan reference client in roam-c (psk|eap|cert|cert-<key>)
#   lab.sh down-client              stop the reference client (frees UDP 500/4500 in roam-c)
#   lab.sh profile MODE [opts]      write a roam client profile, print its path
#                                   MODE: psk|eap|cert-rsa|cert-ecdsa|cert-ecdsa384|cert-ed25519
#                                   opts: --ike P --esp P --server ADDR --port N --psk S
#                                         --password S --id ID --out FILE
#                                         --dpd S --keepalive S --mobike|--no-mobike
#                                         --ike-rekey S --child-rekey S
#                                         --retransmit-initial-ms MS --retransmit-tries N
#                                         --dpd-tries N
#                                         --transport auto|udp|tcp --tcp-port N
#                                         --tcp-fallback-ms MS --udp-retry-seconds S
#                                         --tcp-tls [--tcp-tls-verify none|ca]
#                                         [--tcp-tls-server-name NAME]
#   lab.sh iperf                    (re)start the iperf3 server in roam-l if it is not running
#   lab.sh iperf-restart            stop and start it (iperf3 3.12 can stay "busy" after a client
#                                   that vanished mid-test)
#   lab.sh server-stop              stop the server charon (for a `roam serve` run by the caller)
#   lab.sh serve-profile [MODE] [--out FILE]   write a `roam serve` profile (psk|cert), print its path
#   lab.sh serve-up [MODE]          `roam serve` in roam-s instead of charon (ROAM_BIN, default
#                                   target/debug/roam), by PID file; waits for its tun line
#   lab.sh serve-down               stop `roam serve`, restart charon
#   lab.sh selftest                 reference client psk/eap/cert + ping the LAN
#   lab.sh handshake-times N        handshake time statistics, strongSwan and roam
#   lab.sh wg-up                    userspace WireGuard pair for benchmarks: boringtun-cli in roam-c
#                                   (wgc0 192.0.2.194) and roam-s (wgs0 192.0.2.193, UDP 51820 on
#                                   198.51.100.1), configured with wg; roam-c routes the LAN through
#                                   it (BORINGTUN_BIN, default target/bench-tools/bin/boringtun-cli)
#   lab.sh wg-down                  stop both boringtun-cli by PID, remove the links and sockets
#   lab.sh wg-pid client|server     the pid of that boringtun-cli
#
# Staying connected (roaming, NAT rebinding, server restart, loss, rekeys, leaks):
#   lab.sh client-path a|b|nat|both|all  roam-c's paths to 198.51.100.1: a = c-a (direct),
#                                   b = c-b (host route via 192.0.2.1), nat = c-n through
#                                   roam-n, both = a and b (a preferred), all = as after up.
#                                   A path goes as Wi-Fi does: addresses deleted, link down.
#   lab.sh nat-rebind               roam-n's NAT mapping changes (other port range, conntrack -F)
#   lab.sh loss PCT|off             PCT% loss both ways on roam-c's outside links (nft numgen)
#   lab.sh block-udp on|off         roam-s drops UDP 500/4500 as a hotel or corporate network does
#                                   (IKE/ESP over TCP, RFC 9329, still passes)
#   lab.sh tcp-reset                roam-s answers the next TCP segments to port 4500 (not SYNs)
#                                   with a reset for 1 s: the TCP connections of tunnels break
#   lab.sh server-restart [--kill]  server charon stopped (SIGTERM, or SIGKILL) and started by
#                                   PID; returns once it listens; prints stopped/listening at_ms
#   lab.sh server-reconfig          rewrite + reload the server config (lifetimes below)
#   lab.sh capture start NAME [IFACES...]  tcpdump in roam-c (default c-a c-b c-n), by PID
#   lab.sh capture stop NAME        stop it, print the pcap path ($LAB/captures/NAME.pcap)
#   lab.sh leaks PCAP               exit 1 and print them if inner packets or DNS went outside
#   lab.sh leak-inject [IFACE]      the leak checker's positive control (2 clear packets)
#   lab.sh wakeups PID [SECONDS]    context switches of all threads of PID, per minute
#   lab.sh baseline [RUNS]          strongSwan reference client: handover, server restart,
#                                   NAT rebinding, idle wakeups (not part of CI; minutes)
#   Lifetimes, read when a config is written (strongSwan time values): SERVER_IKE_REKEY (4h),
#   SERVER_CHILD_REKEY (1h), SERVER_DPD (30s); CLIENT_IKE_REKEY, CLIENT_CHILD_REKEY,
#   CLIENT_DPD, CLIENT_DPD_ACTION (clear), CLIENT_CLOSE_ACTION (none) for the reference
#   client (up-client).
#
# Topology (documentation / benchmarking ranges only, no link to the host):
#
#   roam-c (client)                 roam-s (server)                   roam-l (LAN)
#   c-a  198.51.100.2/24  ------  s-a  198.51.100.1/24
#        2001:db8:a::2/64              2001:db8:a::1/64
#   c-b  192.0.2.2/26     ------  s-b  192.0.2.1/26      (second path, MOBIKE)
#   c-n  192.0.2.66/26 -- roam-n n-in 192.0.2.65/26
#                               n-out 192.0.2.130/26 -- s-n 192.0.2.129/26
#                        (nft: masquerade random out of n-out)
#                                 s-l  203.0.113.1/24  ------  l-0 203.0.113.2/24
#                                      2001:db8:203::1/64          2001:db8:203::2/64
#   pools 198.18.0.0/24, 2001:db8:ffff::/112; DNS pushed 203.0.113.53, 2001:db8:203::53
#   iperf3 server in roam-l on 203.0.113.2 / 2001:db8:203::2 port 5201
set -euo pipefail
# never hand the lab lock on to a daemon
. "$(dirname "$(readlink -f "$0")")/lab-lock.sh"

SELF=$(readlink -f "$0")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
LAB=${LAB:-/tmp/roam-lab}
NS_C=roam-c NS_S=roam-s NS_N=roam-n NS_L=roam-l
NAMESPACES=("$NS_C" "$NS_S" "$NS_N" "$NS_L")
CHARON=${CHARON:-/usr/lib/ipsec/charon}
PLUGIN_DIR=/usr/lib/ipsec/plugins

KEY_TYPE=${KEY_TYPE:-rsa}
ROAM_BIN=${ROAM_BIN:-$REPO/target/debug/roam}
SERVE_TUN=${SERVE_TUN:-roams0}
SERVER_ID=${SERVER_ID:-vpn.example.org}
PSK=${PSK:-roam-lab-psk-2f7c1e9a0b4d}
PSK_ID=${PSK_ID:-psk-client@example.org}
EAP_USER=${EAP_USER:-alice}
EAP_PASS=${EAP_PASS:-alice-Lab-Pass-7}
CLIENT_CERT=${CLIENT_CERT:-client-rsa}     # which client cert the reference client uses
CLIENT_TS=${CLIENT_TS:-203.0.113.0/24,2001:db8:203::/64}
LOGLEVEL=${LOGLEVEL:-2}                    # ike/cfg/knl
NET_LOGLEVEL=${NET_LOGLEVEL:-1}            # 2 would log every ESP packet (libipsec)
# Lifetimes and DPD, read whenever a config is written (up, up-client, server-reconfig);
# strongSwan time values (30s, 4h). The reference client's DPD action: clear|restart|trap.
SERVER_IKE_REKEY=${SERVER_IKE_REKEY:-4h}
SERVER_CHILD_REKEY=${SERVER_CHILD_REKEY:-1h}
SERVER_DPD=${SERVER_DPD:-30s}
CLIENT_IKE_REKEY=${CLIENT_IKE_REKEY:-4h}
CLIENT_CHILD_REKEY=${CLIENT_CHILD_REKEY:-1h}
CLIENT_DPD=${CLIENT_DPD:-30s}
CLIENT_DPD_ACTION=${CLIENT_DPD_ACTION:-clear}
CLIENT_CLOSE_ACTION=${CLIENT_CLOSE_ACTION:-none}      # what the client does on the server's DELETE
SERVER_MAIN=198.51.100.1                   # the server address clients use on every path
CLIENT_NAMES=(client-rsa client-ecdsa client-ecdsa384 client-ed25519)

IKE_PROPOSALS="aes256gcm16-prfsha384-ecp384, aes256gcm16-prfsha256-curve25519, aes256-sha256-modp2048, chacha20poly1305-prfsha256-curve25519"
# without DH: for the CHILD_SA of IKE_AUTH and rekeys without PFS; with DH: PFS rekeys
ESP_PROPOSALS="aes256gcm16, aes256-sha256, chacha20poly1305, aes256gcm16-ecp384, aes256gcm16-curve25519, aes256-sha256-modp2048, chacha20poly1305-curve25519"
IKE_PROPOSALS=${IKE_PROPOSALS_OVERRIDE:-$IKE_PROPOSALS}
ESP_PROPOSALS=${ESP_PROPOSALS_OVERRIDE:-$ESP_PROPOSALS}

# Explicit plugin lists (load_modular = no): nothing from /etc/strongswan.d is
# loaded, so no 'resolve' can write the host's /etc/resolv.conf. The userspace
# ESP backend (kernel-libipsec) has to be registered before kernel-netlink.
BASE_PLUGINS="random nonce openssl pem pkcs1 pkcs8 x509 pubkey constraints gmp curve25519 chapoly gcm aes sha1 sha2 hmac kdf kernel-libipsec kernel-netlink socket-default vici eap-identity eap-mschapv2"
SERVER_PLUGINS="$BASE_PLUGINS attr"
CLIENT_PLUGINS="$BASE_PLUGINS resolve"

fail() { echo "lab: error: $*" >&2; exit 1; }
say() { echo "[lab] $*" >&2; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
usage() { sed -n "2,/^set -euo/p" "$SELF" | grep "^#" | sed "s/^# \{0,1\}//"; }
require_root() { [ "$(id -u)" -eq 0 ] || fail "needs root"; }

# wait_for SECONDS COMMAND...: poll every 0.1 s until COMMAND succeeds
wait_for() {
  local limit=$(( $1 * 10 )) i=0; shift
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -ge "$limit" ] && return 1
    sleep 0.1
  done
}

check_tools() {
  local miss=() t p
  for t in ip nft pki swanctl openssl "$CHARON"; do command -v "$t" >/dev/null 2>&1 || miss+=("$t"); done
  for p in kernel-libipsec kernel-netlink openssl gcm chapoly curve25519 eap-identity eap-mschapv2 vici attr resolve; do
    [ -e "$PLUGIN_DIR/libstrongswan-$p.so" ] || miss+=("plugin $p")
  done
  [ -c /dev/net/tun ] || miss+=("/dev/net/tun")
  [ ${#miss[@]} -eq 0 ] || fail "missing: ${miss[*]} (try: $0 deps)"
}

do_deps() {
  require_root
  export DEBIAN_FRONTEND=noninteractive
  # libstrongswan-standard-plugins (openssl, gcm) is only a Recommends: name it,
  # or there is no AES-GCM, no ECP and eap-mschapv2 silently does not load.
  apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends \
    strongswan-swanctl charon-systemd strongswan-charon strongswan-pki \
    libcharon-extra-plugins libcharon-extauth-plugins \
    libstrongswan-extra-plugins libstrongswan-standard-plugins \
    iproute2 nftables iputils-ping iperf3 tcpdump conntrack openssl python3 procps
}

# ---------------------------------------------------------------- network --
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

make_ns() { ns_exists "$1" || ip netns add "$1"; ip -n "$1" link set lo up; }

link_pair() { # NS_A IF_A NS_B IF_B
  ip -n "$1" link show "$2" >/dev/null 2>&1 || ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
}

set_addrs() { # NS IF ADDR...
  local ns=$1 dev=$2 a; shift 2
  for a in "$@"; do
    case $a in
      *:*) ip -n "$ns" -6 addr replace "$a" dev "$dev" nodad ;;
      *) ip -n "$ns" addr replace "$a" dev "$dev" ;;
    esac
  done
  ip -n "$ns" link set "$dev" up
}

network_up() {
  local ns
  for ns in "${NAMESPACES[@]}"; do make_ns "$ns"; done
  link_pair "$NS_C" c-a "$NS_S" s-a
  link_pair "$NS_C" c-b "$NS_S" s-b
  link_pair "$NS_C" c-n "$NS_N" n-in
  link_pair "$NS_N" n-out "$NS_S" s-n
  link_pair "$NS_S" s-l "$NS_L" l-0
  set_addrs "$NS_C" c-a 198.51.100.2/24 2001:db8:a::2/64
  set_addrs "$NS_S" s-a 198.51.100.1/24 2001:db8:a::1/64
  set_addrs "$NS_C" c-b 192.0.2.2/26
  set_addrs "$NS_S" s-b 192.0.2.1/26
  set_addrs "$NS_C" c-n 192.0.2.66/26
  set_addrs "$NS_N" n-in 192.0.2.65/26
  set_addrs "$NS_N" n-out 192.0.2.130/26
  set_addrs "$NS_S" s-n 192.0.2.129/26
  set_addrs "$NS_S" s-l 203.0.113.1/24 2001:db8:203::1/64
  set_addrs "$NS_L" l-0 203.0.113.2/24 2001:db8:203::2/64
  # the server's NAT-side address is reached through roam-n
  ip -n "$NS_C" route replace 192.0.2.128/26 via 192.0.2.65
  # the LAN host answers everything through the VPN server
  ip -n "$NS_L" route replace default via 203.0.113.1
  ip -n "$NS_L" -6 route replace default via 2001:db8:203::1
  for ns in "$NS_S" "$NS_N"; do
    in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  done
  # the NAT box rewrites the source address and picks random ports (from one of two ranges:
  # nat-rebind switches them), and reaches the server's main address through s-n
  nat_rules "$(nat_range)"
  ip -n "$NS_N" route replace "$SERVER_MAIN/32" via 192.0.2.129 dev n-out
  # every client path up, no host routes, no loss: what client-path / loss changed is undone
  host_routes_del
  loss_clear
  in_ns "$NS_S" nft delete table inet roamblock 2>/dev/null || true
}

# -------------------------------------------------------------------- PKI --
# $LAB/pki/keys/       client keys (shared by every PKI tree, generated once)
# $LAB/pki/<KEY_TYPE>/ CA and server of that key type, client certs issued by that CA
pki_cmd() { STRONGSWAN_CONF=$LAB/pki/strongswan.conf pki "$@"; }

gen_key() { # TYPE BITS OUT
  [ -s "$3" ] && return 0
  local size=()
  [ -n "$2" ] && size=(--size "$2")
  pki_cmd --gen --type "$1" "${size[@]}" --outform pem > "$3.tmp"
  chmod 600 "$3.tmp"; mv "$3.tmp" "$3"
}

key_spec() { # KEY_TYPE -> "type bits" of the CA/server keys
  case $1 in
    rsa) echo "rsa 3072" ;;
    ecdsa) echo "ecdsa 384" ;;
    ed25519) echo "ed25519 " ;;
    *) fail "KEY_TYPE must be rsa, ecdsa or ed25519 (got '$1')" ;;
  esac
}

client_key_spec() { # client name -> "type bits"
  case $1 in
    client-rsa) echo "rsa 3072" ;;
    client-ecdsa) echo "ecdsa 256" ;;
    client-ecdsa384) echo "ecdsa 384" ;;
    client-ed25519) echo "ed25519 " ;;
  esac
}

pki_up() {
  local kt=$1 base=$LAB/pki dir=$LAB/pki/$1 keys=$LAB/pki/keys t b n
  mkdir -p "$dir" "$keys"
  cat > "$base/strongswan.conf" <<'EOF'
pki {
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey gmp sha1 sha2 hmac curve25519
}
EOF
  read -r t b <<<"$(key_spec "$kt")"
  for n in "${CLIENT_NAMES[@]}"; do
    local ct cb; read -r ct cb <<<"$(client_key_spec "$n")"
    gen_key "$ct" "$cb" "$keys/$n.key"
  done
  [ -s "$dir/done" ] && return 0
  say "creating the $kt PKI in $dir"
  gen_key "$t" "$b" "$dir/ca.key"
  gen_key "$t" "$b" "$dir/server.key"
  pki_cmd --self --ca --lifetime 3650 --in "$dir/ca.key" --type "$t" \
    --dn "C=CH, O=roam-lab, CN=roam-lab Root CA ($kt)" --outform pem > "$dir/ca.crt"
  # (pki --pub auto-detects the key type; '--type ed25519' is not accepted there)
  pki_cmd --pub --in "$dir/server.key" |
    pki_cmd --issue --lifetime 1825 --cacert "$dir/ca.crt" --cakey "$dir/ca.key" \
      --dn "C=CH, O=roam-lab, CN=$SERVER_ID" --san "$SERVER_ID" \
      --san 198.51.100.1 --san 192.0.2.1 --san 192.0.2.129 --san 2001:db8:a::1 \
      --flag serverAuth --flag ikeIntermediate --outform pem > "$dir/server.crt"
  for n in "${CLIENT_NAMES[@]}"; do
    pki_cmd --pub --in "$keys/$n.key" |
      pki_cmd --issue --lifetime 1825 --cacert "$dir/ca.crt" --cakey "$dir/ca.key" \
        --dn "C=CH, O=roam-lab, CN=$n" --san "$n@example.org" \
        --flag clientAuth --outform pem > "$dir/$n.crt"
  done
  openssl x509 -in "$dir/ca.crt" -outform der -out "$dir/ca.der"
  openssl pkcs8 -topk8 -nocrypt -in "$keys/client-rsa.key" -out "$keys/client-rsa.pk8.pem"
  chmod 600 "$keys"/*.pem
  echo "$kt" > "$dir/done"
}

# ---------------------------------------------------------------- configs --
strongswan_conf() { # ROLE PLUGINS
  local role=$1 dir=$LAB/$1 plugins=$2
  cat > "$dir/strongswan.conf" <<EOF
# written by scripts/lab.sh for the $role daemon
charon {
  load_modular = no
  load = $plugins
  port = 500
  port_nat_t = 4500
  retransmit_tries = 3
  plugins {
    vici {
      socket = unix://$dir/charon.vici
    }
    resolve {
      file = $dir/resolv.conf
    }
  }
  filelog {
    lab {
      path = $dir/charon.log
      time_format = %H:%M:%S
      time_add_ms = yes
      append = yes
      flush_line = yes
      ike_name = yes
      default = 1
      ike = $LOGLEVEL
      cfg = $LOGLEVEL
      knl = $LOGLEVEL
      net = $NET_LOGLEVEL
      esp = 1
      enc = 1
    }
  }
  syslog {
    daemon {
      default = -1
    }
    auth {
      default = -1
    }
  }
}
swanctl {
  socket = unix://$dir/charon.vici
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey gmp sha1 sha2 curve25519
}
EOF
}

swanctl_dirs() { # DIR
  mkdir -p "$1"/{conf.d,x509,x509ca,x509aa,x509ac,x509crl,x509ocsp,pubkey,private,rsa,ecdsa,bliss,pkcs8,pkcs12}
  chmod 700 "$1/private"
}

server_conf() {
  local kt=$1 dir=$LAB/server sw=$LAB/server/swanctl pki=$LAB/pki/$1
  mkdir -p "$dir/run"; swanctl_dirs "$sw"
  rm -f "$sw"/x509ca/* "$sw"/x509/* "$sw"/private/*
  cp "$pki/ca.crt" "$sw/x509ca/ca.crt"
  cp "$pki/server.crt" "$sw/x509/server.crt"
  cp "$pki/server.key" "$sw/private/server.key"
  strongswan_conf server "$SERVER_PLUGINS"
  local shared="
    version = 2
    proposals = $IKE_PROPOSALS
    pools = v4pool, v6pool
    fragmentation = yes
    mobike = yes
    unique = never
    dpd_delay = $SERVER_DPD
    rekey_time = $SERVER_IKE_REKEY"
  local child="
      net {
        local_ts = 0.0.0.0/0, ::/0
        esp_proposals = $ESP_PROPOSALS
        dpd_action = clear
        rekey_time = $SERVER_CHILD_REKEY
      }"
  # send_certreq stays at its default everywhere: the IKE_SA_INIT config is
  # chosen before the peer's auth method is known, so 'no' on rw-psk would also
  # take the CERTREQ away from certificate clients.
  cat > "$sw/swanctl.conf" <<EOF
# written by scripts/lab.sh: road-warrior responder, server key type $kt
connections {
  rw-psk {$shared
    local {
      auth = psk
      id = $SERVER_ID
    }
    remote {
      auth = psk
      id = $PSK_ID
    }
    children {$child
    }
  }
  rw-eap {$shared
    local {
      auth = pubkey
      certs = server.crt
      id = $SERVER_ID
    }
    remote {
      auth = eap-mschapv2
      eap_id = %any
    }
    children {$child
    }
  }
  rw-cert {$shared
    local {
      auth = pubkey
      certs = server.crt
      id = $SERVER_ID
    }
    remote {
      auth = pubkey
      cacerts = ca.crt
      id = "C=CH, O=roam-lab, CN=*"
    }
    children {$child
    }
  }
}
pools {
  v4pool {
    addrs = 198.18.0.0/24
    dns = 203.0.113.53
  }
  v6pool {
    addrs = 2001:db8:ffff::/112
    dns = 2001:db8:203::53
  }
}
secrets {
  ike-psk {
    id-a = $SERVER_ID
    id-b = $PSK_ID
    secret = "$PSK"
  }
  eap-1 {
    id = $EAP_USER
    secret = "$EAP_PASS"
  }
}
EOF
  chmod 600 "$sw/swanctl.conf"
  echo "$kt" > "$dir/key_type"
}

client_conf() { # SERVER_ADDR
  local server=$1 kt dir=$LAB/client sw=$LAB/client/swanctl
  kt=$(active_key_type)
  mkdir -p "$dir/run"; swanctl_dirs "$sw"
  rm -f "$sw"/x509ca/* "$sw"/x509/* "$sw"/private/*
  [ -s "$LAB/pki/$kt/$CLIENT_CERT.crt" ] || fail "unknown CLIENT_CERT '$CLIENT_CERT' (one of: ${CLIENT_NAMES[*]})"
  cp "$LAB/pki/$kt/ca.crt" "$sw/x509ca/ca.crt"
  cp "$LAB/pki/$kt/$CLIENT_CERT.crt" "$sw/x509/client.crt"
  cp "$LAB/pki/keys/$CLIENT_CERT.key" "$sw/private/client.key"
  strongswan_conf client "$CLIENT_PLUGINS"
  local shared="
    version = 2
    remote_addrs = $server
    vips = 0.0.0.0, ::
    proposals = $IKE_PROPOSALS
    fragmentation = yes
    mobike = yes
    dpd_delay = $CLIENT_DPD
    rekey_time = $CLIENT_IKE_REKEY"
  local child="
      net {
        remote_ts = $CLIENT_TS
        esp_proposals = $ESP_PROPOSALS
        dpd_action = $CLIENT_DPD_ACTION
        close_action = $CLIENT_CLOSE_ACTION
        rekey_time = $CLIENT_CHILD_REKEY
      }"
  cat > "$sw/swanctl.conf" <<EOF
# written by scripts/lab.sh: reference initiator towards $server
connections {
  home-psk {$shared
    send_certreq = no
    local {
      auth = psk
      id = $PSK_ID
    }
    remote {
      auth = psk
      id = $SERVER_ID
    }
    children {$child
    }
  }
  home-eap {$shared
    local {
      auth = eap-mschapv2
      id = $EAP_USER
      eap_id = $EAP_USER
    }
    remote {
      auth = pubkey
      id = $SERVER_ID
      cacerts = ca.crt
    }
    children {$child
    }
  }
  home-cert {$shared
    send_cert = always
    local {
      auth = pubkey
      certs = client.crt
    }
    remote {
      auth = pubkey
      id = $SERVER_ID
      cacerts = ca.crt
    }
    children {$child
    }
  }
}
secrets {
  ike-psk {
    id-a = $SERVER_ID
    id-b = $PSK_ID
    secret = "$PSK"
  }
  eap-1 {
    id = $EAP_USER
    secret = "$EAP_PASS"
  }
}
EOF
  chmod 600 "$sw/swanctl.conf"
}

active_key_type() { cat "$LAB/server/key_type" 2>/dev/null || echo "$KEY_TYPE"; }

# ---------------------------------------------------------------- daemons --
role_ns() { case $1 in server) echo "$NS_S" ;; client) echo "$NS_C" ;; *) fail "role must be server or client" ;; esac; }

daemon_pid() { # ROLE: print the pid of its running charon, or fail
  local f=$LAB/$1/run/charon.pid p
  [ -s "$f" ] || return 1
  p=$(cat "$f")
  [ -r "/proc/$p/comm" ] && [ "$(cat "/proc/$p/comm")" = charon ] || return 1
  echo "$p"
}

run_swanctl() { # ROLE ARGS...
  local role=$1; shift
  STRONGSWAN_CONF=$LAB/$role/strongswan.conf SWANCTL_DIR=$LAB/$role/swanctl \
    timeout 60 ip netns exec "$(role_ns "$role")" swanctl "$@"
}

# charon writes /var/run/charon.pid (compiled in), so two of them cannot share
# one /run. `ip netns exec` gives its command a private mount namespace: bind
# the daemon's own run directory over /run there, then exec charon.
daemon_start() { # ROLE
  local role=$1 dir=$LAB/$1 ns
  ns=$(role_ns "$role")
  if daemon_pid "$role" >/dev/null; then
    say "$role charon runs (pid $(daemon_pid "$role")), reloading its configuration"
  else
    rm -f "$dir/run/charon.pid" "$dir/charon.vici"
    STRONGSWAN_CONF=$dir/strongswan.conf SWANCTL_DIR=$dir/swanctl \
      setsid nohup ip netns exec "$ns" sh -c 'mount --bind "$1" /run && exec "$2"' \
      charon-in-ns "$dir/run" "$CHARON" > "$dir/charon.out" 2>&1 < /dev/null &
    if ! wait_for 10 test -S "$dir/charon.vici" || ! daemon_pid "$role" >/dev/null; then
      tail -n 20 "$dir/charon.out" "$dir/charon.log" >&2 2>/dev/null || true
      fail "$role charon did not come up within 10 s"
    fi
    say "$role charon started, pid $(daemon_pid "$role"), netns $ns"
  fi
  run_swanctl "$role" --load-all --clear --noprompt > "$dir/load-all.out" 2>&1 ||
    { cat "$dir/load-all.out" >&2; fail "swanctl --load-all failed for $role"; }
}

daemon_stop() { # ROLE
  local p
  p=$(daemon_pid "$1") || { rm -f "$LAB/$1/run/charon.pid"; return 0; }
  kill -TERM "$p" 2>/dev/null || true
  wait_for 5 sh -c "! test -d /proc/$p" || kill -KILL "$p" 2>/dev/null || true
  say "$1 charon (pid $p) stopped"
}

# ------------------------------------------------------- LAN iperf3 server --
# One iperf3 server in roam-l (all addresses: 203.0.113.2 and 2001:db8:203::2,
# port 5201), for traffic through the tunnel. It serves one test at a time.
pid_of() { # PIDFILE COMM: print the pid if that process runs with that name
  local p
  [ -s "$1" ] || return 1
  p=$(cat "$1")
  [[ $p =~ ^[0-9]+$ ]] && [ -r "/proc/$p/comm" ] && [ "$(cat "/proc/$p/comm")" = "$2" ] || return 1
  echo "$p"
}

stop_pid() { # PID SECONDS: SIGTERM, wait, SIGKILL; fails if SIGKILL was needed
  kill -TERM "$1" 2>/dev/null || return 0
  wait_for "$2" sh -c "! test -d /proc/$1" && return 0
  kill -KILL "$1" 2>/dev/null || true
  return 1
}

iperf_listening() { in_ns "$NS_L" ss -Hltn 'sport = :5201' | grep -q LISTEN; }

iperf_start() {
  local dir=$LAB/lan
  mkdir -p "$dir"
  if pid_of "$dir/iperf3.pid" iperf3 >/dev/null; then return 0; fi
  rm -f "$dir/iperf3.pid"
  # -D: iperf3 daemonizes itself and writes the pid file; it listens on [::] (v4 and v6)
  # --idle-timeout: a test that stalled (a broken tunnel) does not block the next one
  in_ns "$NS_L" iperf3 -s -D --idle-timeout 30 --pidfile "$dir/iperf3.pid" --logfile "$dir/iperf3.log" ||
    fail "iperf3 server did not start in $NS_L"
  wait_for 5 iperf_listening || { tail -n 20 "$dir/iperf3.log" >&2 2>/dev/null; fail "iperf3 server not listening in $NS_L"; }
  say "iperf3 server in $NS_L, pid $(pid_of "$dir/iperf3.pid" iperf3 || echo '?'), port 5201"
}

iperf_stop() {
  local p
  p=$(pid_of "$LAB/lan/iperf3.pid" iperf3) || return 0
  stop_pid "$p" 3 || true
  rm -f "$LAB/lan/iperf3.pid"
  say "iperf3 server (pid $p) stopped"
}

# ------------------------------------------------------------- roam serve --
# `roam serve` in roam-s in place of charon (both want UDP 500/4500 there), for
# roam-to-roam tests. The server profile follows the issue-3 contract; the pool,
# DNS, PSK and PKI are the lab's, so `lab.sh profile psk|cert-*` clients fit it.
serve_dir() { echo "$LAB/serve"; }
serve_pid() { # the pid of our `roam serve`, if it still runs (checked by its command line)
  local f p
  f=$(serve_dir)/roam.pid
  [ -s "$f" ] || return 1
  p=$(cat "$f")
  [[ $p =~ ^[0-9]+$ ]] && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q ' serve --profile ' || return 1
  echo "$p"
}

do_serve_profile() { # [MODE] [--out FILE]
  local mode=psk out=""
  if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then mode=$1; shift; fi
  while [ $# -gt 0 ]; do
    case $1 in
      --out) out=$2; shift 2 ;;
      *) fail "serve-profile: unknown option '$1'" ;;
    esac
  done
  local kt pki; kt=$(active_key_type); pki=$LAB/pki/$kt
  [ -s "$pki/server.crt" ] || fail "no PKI yet: run lab.sh up first"
  [ -n "$out" ] || { mkdir -p "$(serve_dir)"; out=$(serve_dir)/server-$mode.toml; }
  toml() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }
  {
    echo "# roam serve profile written by scripts/lab.sh ($mode, server key type $kt)"
    echo "[server]"
    echo "port = 500"
    echo "tcp_port = ${SERVE_TCP_PORT:-4500}"   # IKE/ESP over TCP too (RFC 9329)
    # and TLS clients on that port beside plain ones (RFC 9329 section 8)
    echo "tls_cert = $(toml "$pki/server.crt")"
    echo "tls_key = $(toml "$pki/server.key")"
    echo "id = $(toml "$SERVER_ID")"
    if [ "$mode" = cert ]; then   # a PSK server has no certificate (the loader refuses one)
      echo "certificate = $(toml "$pki/server.crt")"
      echo "private_key = $(toml "$pki/server.key")"
    fi
    echo
    echo "[auth]"
    case $mode in
      psk)
        echo 'method = "psk"'
        echo "psk = $(toml "$PSK")" ;;
      cert)
        echo 'method = "certificate"'
        echo "ca = $(toml "$pki/ca.crt")" ;;
      *) fail "serve-profile MODE must be psk or cert" ;;
    esac
    echo
    echo "[pool]"
    echo 'ipv4 = "198.18.0.0/24"'
    echo 'ipv6 = "2001:db8:ffff::/112"'
    echo 'dns = ["203.0.113.53", "2001:db8:203::53"]'
    echo
    echo "[tunnel]"
    echo 'subnets = ["0.0.0.0/0", "::/0"]'
    echo "mobike = true"
    echo "mtu = 1400"
    echo "tun_name = $(toml "$SERVE_TUN")"
    echo
    echo "[crypto]"
    echo 'ike = ["aes256gcm16-prfsha384-ecp384", "aes256gcm16-prfsha256-curve25519", "aes256-sha256-modp2048", "chacha20poly1305-prfsha256-curve25519"]'
    echo 'esp = ["aes256gcm16", "aes256-sha256", "chacha20poly1305"]'
  } > "$out.tmp"
  chmod 600 "$out.tmp"; mv "$out.tmp" "$out"
  echo "$out"
}

do_server_stop() {
  require_root
  daemon_stop server
  # kernel-libipsec removes its TUN on a clean stop; a killed charon may leave it
  ip -n "$NS_S" link del ipsec0 2>/dev/null || true
}

serve_stop() { # stops roam serve; fails if it needed SIGKILL or left its TUN
  local p ok=0
  p=$(serve_pid) || { rm -f "$(serve_dir)/roam.pid"; return 0; }
  if stop_pid "$p" 10; then say "roam serve (pid $p) exited after SIGTERM"
  else say "roam serve (pid $p) did not exit within 10 s of SIGTERM: killed"; ok=1; fi
  rm -f "$(serve_dir)/roam.pid"
  if ip -n "$NS_S" link show "$SERVE_TUN" >/dev/null 2>&1; then
    say "roam serve left its TUN $SERVE_TUN behind: deleting it"
    ip -n "$NS_S" link del "$SERVE_TUN" 2>/dev/null || true
    ok=1
  fi
  return "$ok"
}

do_serve_up() { # [MODE]
  require_root; check_tools
  local mode=${1:-psk} dir out prof p i
  dir=$(serve_dir); out=$dir/serve.out
  ns_exists "$NS_S" || fail "no lab (lab.sh up first)"
  [ -x "$ROAM_BIN" ] || fail "no roam binary at $ROAM_BIN (set ROAM_BIN or cargo build -p roam-harness)"
  "$ROAM_BIN" serve --help >/dev/null 2>&1 || fail "$ROAM_BIN has no 'serve' subcommand"
  serve_stop || true
  prof=$(do_serve_profile "$mode")
  do_server_stop
  mkdir -p "$dir"
  # `ip netns exec` execs roam, so $! is roam's pid
  RUST_LOG=${RUST_LOG:-info} setsid nohup ip netns exec "$NS_S" "$ROAM_BIN" serve --profile "$prof" \
    > "$out" 2>&1 < /dev/null &
  p=$!
  echo "$p" > "$dir/roam.pid"
  for i in $(seq 1 100); do
    grep -q '^tun ' "$out" 2>/dev/null && break
    [ -d "/proc/$p" ] || break
    sleep 0.1
  done
  if ! grep -q '^tun ' "$out" 2>/dev/null || ! serve_pid >/dev/null; then
    tail -n 30 "$out" >&2 2>/dev/null || true
    serve_stop || true
    fail "roam serve did not print its tun line within 10 s (output: $out)"
  fi
  grep -E '^(listening|tun) ' "$out" >&2 || true
  say "roam serve ($mode) runs in $NS_S, pid $p, output $out; charon is stopped until serve-down"
}

do_serve_down() {
  require_root
  local rc=0
  serve_stop || rc=1
  if ns_exists "$NS_S" && [ -s "$LAB/server/key_type" ]; then
    daemon_start server
  fi
  return "$rc"
}

# ------------------------------------------------------ staying connected --
# Paths of roam-c toward the server's 198.51.100.1 (the address the client uses on every
# path): a = c-a (direct), b = c-b (host route via 192.0.2.1; the server answers on any of
# its addresses), nat = c-n through roam-n. A path is removed as a phone loses Wi-Fi: its
# addresses are deleted and the link goes down (RTM_DELADDR, RTM_DELROUTE, RTM_NEWLINK), which
# takes every route through it along. The host routes carry metrics, so with a and b both
# up a is preferred and b takes over the moment a goes.
path_iface() { case $1 in a) echo c-a ;; b) echo c-b ;; nat) echo c-n ;; esac; }

path_up() { # a|b|nat
  case $1 in
    a) set_addrs "$NS_C" c-a 198.51.100.2/24 2001:db8:a::2/64
       ip -n "$NS_C" route replace "$SERVER_MAIN/32" dev c-a metric 100 ;;
    b) set_addrs "$NS_C" c-b 192.0.2.2/26
       ip -n "$NS_C" route replace "$SERVER_MAIN/32" via 192.0.2.1 dev c-b metric 200 ;;
    nat) set_addrs "$NS_C" c-n 192.0.2.66/26
       ip -n "$NS_C" route replace 192.0.2.128/26 via 192.0.2.65 dev c-n
       ip -n "$NS_C" route replace "$SERVER_MAIN/32" via 192.0.2.65 dev c-n metric 300 ;;
  esac
}

path_down() { # a|b|nat
  local dev; dev=$(path_iface "$1")
  ip -n "$NS_C" link show "$dev" >/dev/null 2>&1 || return 0
  ip -n "$NS_C" addr flush dev "$dev"
  ip -n "$NS_C" link set "$dev" down
  # the kernel takes the routes through a downed link along; make sure nothing is left
  local r
  # shellcheck disable=SC2086 # a route line is split into ip's arguments on purpose
  while read -r r; do
    [ -n "$r" ] && ip -n "$NS_C" route del $r dev "$dev" 2>/dev/null || true
  done < <(ip -n "$NS_C" route show dev "$dev" 2>/dev/null)
  # shellcheck disable=SC2086
  while read -r r; do
    [ -n "$r" ] && ip -n "$NS_C" -6 route del $r dev "$dev" 2>/dev/null || true
  done < <(ip -n "$NS_C" -6 route show dev "$dev" 2>/dev/null)
}

host_routes_del() {
  local m
  for m in 100 200 300; do ip -n "$NS_C" route del "$SERVER_MAIN/32" metric "$m" 2>/dev/null || true; done
}

path_is_up() { # a|b|nat: link up and address there
  local dev; dev=$(path_iface "$1")
  ip -n "$NS_C" -o -4 addr show dev "$dev" 2>/dev/null | grep -q inet
}

# client-path a|b|nat|both|all. New paths come up before old ones go (a phone's cellular
# is up when Wi-Fi drops). `all` is the topology of `up`: every link up, no host routes.
do_client_path() {
  require_root
  ns_exists "$NS_C" || fail "no lab (lab.sh up first)"
  local want=${1:-} p keep=()
  case $want in
    a) keep=(a) ;;
    b) keep=(b) ;;
    nat) keep=(nat) ;;
    both) keep=(a b) ;;
    all)
      host_routes_del
      for p in a b nat; do path_up "$p"; done
      host_routes_del
      say "client paths: all links up, no host routes (the topology of up)"
      return 0 ;;
    *) fail "client-path a|b|nat|both|all" ;;
  esac
  for p in "${keep[@]}"; do path_up "$p"; done
  for p in a b nat; do
    [[ " ${keep[*]} " == *" $p "* ]] || path_down "$p"
  done
  local via
  via=$(ip -n "$NS_C" route get "$SERVER_MAIN" 2>/dev/null | head -n1)
  say "client paths: ${keep[*]}; $SERVER_MAIN: $via"
}

# The NAT's masquerade port range: two disjoint ranges, so a rebind always changes the port.
NAT_RANGE_A=10000-19999
NAT_RANGE_B=20000-29999
nat_range() { cat "$LAB/nat/range" 2>/dev/null || echo "$NAT_RANGE_A"; }

nat_rules() { # RANGE
  in_ns "$NS_N" nft -f - <<NFT
table ip roamnat
delete table ip roamnat
table ip roamnat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "n-out" meta l4proto { tcp, udp } masquerade to :$1 random
    oifname "n-out" masquerade random
  }
}
NFT
}

# nat-rebind: the other port range and an empty conntrack table in roam-n. The client's next
# packet gets a new outside port; the server's packets to the old one are dropped there.
do_nat_rebind() {
  require_root
  ns_exists "$NS_N" || fail "no lab (lab.sh up first)"
  command -v conntrack >/dev/null 2>&1 || fail "no conntrack (apt-get install conntrack)"
  local old new
  old=$(nat_range)
  if [ "$old" = "$NAT_RANGE_A" ]; then new=$NAT_RANGE_B; else new=$NAT_RANGE_A; fi
  mkdir -p "$LAB/nat"
  nat_rules "$new"
  echo "$new" > "$LAB/nat/range"
  in_ns "$NS_N" conntrack -F >/dev/null 2>&1 || true
  say "NAT rebound: masquerade ports $old -> $new, conntrack flushed"
}

# loss PCT|off: drops PCT% of IP packets both ways on roam-c's outside links (c-a, c-b, c-n)
# with nftables `numgen random` in netdev ingress hooks: inbound at roam-c's end of each link,
# outbound at the far end (s-a, s-b in roam-s, n-in in roam-n). Ingress, because a drop in an
# output hook is an error for the sender (EPERM) rather than loss, and this kernel's egress
# hook counts but does not drop on veth. ARP and ICMPv6 (neighbour discovery) pass.
LOSS_LINKS=("$NS_C c-a" "$NS_C c-b" "$NS_C c-n" "$NS_S s-a" "$NS_S s-b" "$NS_N n-in")

loss_clear() {
  local ns
  for ns in "$NS_C" "$NS_S" "$NS_N"; do in_ns "$ns" nft delete table netdev roamloss 2>/dev/null || true; done
}

do_loss() {
  require_root
  ns_exists "$NS_C" || fail "no lab (lab.sh up first)"
  local pct=${1:-} l ns dev
  loss_clear
  if [ "$pct" = off ]; then say "loss off"; return 0; fi
  [[ $pct =~ ^[0-9]+$ ]] && [ "$pct" -le 100 ] || fail "loss PCT|off (PCT 0..100)"
  for l in "${LOSS_LINKS[@]}"; do
    read -r ns dev <<<"$l"
    in_ns "$ns" nft -f - <<NFT
table netdev roamloss {
  chain in_${dev/-/_} {
    type filter hook ingress device "$dev" priority 0; policy accept;
    meta protocol ip numgen random mod 100 < $pct counter drop
    meta protocol ip6 meta l4proto != ipv6-icmp numgen random mod 100 < $pct counter drop
  }
}
NFT
  done
  say "loss $pct% both ways on c-a, c-b, c-n (ingress of both ends)"
}

# block-udp on|off: roam-s drops IKE and ESP in UDP (ports 500 and 4500) on the way in, as a
# network that only lets TCP through does; TCP to port 4500 (RFC 9329) still passes.
do_block_udp() {
  require_root
  ns_exists "$NS_S" || fail "no lab (lab.sh up first)"
  in_ns "$NS_S" nft delete table inet roamblock 2>/dev/null || true
  case ${1:-} in
    off) say "UDP 500/4500 open again"; return 0 ;;
    on) ;;
    *) fail "block-udp on|off" ;;
  esac
  in_ns "$NS_S" nft -f - <<NFT
table inet roamblock {
  chain in {
    type filter hook input priority 0; policy accept;
    udp dport { 500, 4500 } counter drop
  }
}
NFT
  say "roam-s drops UDP 500 and 4500"
}

# tcp-reset: for one second roam-s answers TCP segments to port 4500 other than SYNs with a
# reset (nft reject), so established RFC 9329 connections break while new ones can open.
do_tcp_reset() {
  require_root
  ns_exists "$NS_S" || fail "no lab (lab.sh up first)"
  in_ns "$NS_S" nft -f - <<NFT
table inet roamreset {
  chain in {
    type filter hook input priority 0; policy accept;
    tcp dport 4500 tcp flags & syn == 0 counter reject with tcp reset
  }
}
NFT
  sleep 1
  in_ns "$NS_S" nft delete table inet roamreset 2>/dev/null || true
  say "TCP port 4500 reset for 1 s"
}

server_listening() { in_ns "$NS_S" ss -Hlun 'sport = :500' | grep -q . && in_ns "$NS_S" ss -Hlun 'sport = :4500' | grep -q .; }

# server-restart [--kill]: the server charon stops (SIGTERM by PID, or SIGKILL: a crash)
# and starts again; returns once it listens on UDP 500 and 4500 and has its config loaded.
do_server_restart() {
  require_root
  local p t0 t1
  p=$(daemon_pid server) || fail "the server charon is not running"
  t0=$(date +%s%3N)
  if [ "${1:-}" = --kill ]; then
    kill -KILL "$p" 2>/dev/null || true
    wait_for 5 sh -c "! test -d /proc/$p" || fail "server charon $p survived SIGKILL"
    say "server charon (pid $p) killed"
  else
    daemon_stop server
  fi
  # a killed charon leaves libipsec's TUN; a stopped one removes it
  ip -n "$NS_S" link del ipsec0 2>/dev/null || true
  daemon_start server
  wait_for 10 server_listening || fail "the server charon does not listen on UDP 500/4500"
  t1=$(date +%s%3N)
  echo "server-restart stopped_at_ms=$t0 listening_at_ms=$t1 pid=$(daemon_pid server)"
}

# server-reconfig: rewrite the server config (SERVER_IKE_REKEY, SERVER_CHILD_REKEY,
# SERVER_DPD from the environment, defaults otherwise) and reload it; new SAs get it.
do_server_reconfig() {
  require_root
  daemon_pid server >/dev/null || fail "the server charon is not running"
  server_conf "$(active_key_type)"
  run_swanctl server --load-all --clear --noprompt > "$LAB/server/load-all.out" 2>&1 ||
    { cat "$LAB/server/load-all.out" >&2; fail "swanctl --load-all failed for the server"; }
  say "server config reloaded: IKE rekey $SERVER_IKE_REKEY, CHILD rekey $SERVER_CHILD_REKEY, DPD $SERVER_DPD"
}

# capture start NAME IFACES... / capture stop NAME: one tcpdump in roam-c on `any` with
# LINUX_SLL2 framing (it records each packet's interface, and survives links going down),
# and a sidecar NAME.ifaces with the index of each named interface: `leaks` looks only
# at those. Files in $LAB/captures/.
capture_dir() { echo "$LAB/captures"; }

do_capture() {
  require_root
  local sub=${1:-} name=${2:-} dir p i
  dir=$(capture_dir)
  [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || fail "capture start|stop NAME [IFACES...] (NAME: letters, digits, _.-)"
  shift 2
  case $sub in
    start)
      [ $# -gt 0 ] || set -- c-a c-b c-n
      mkdir -p "$dir"
      do_capture_stop "$name" >/dev/null 2>&1 || true
      : > "$dir/$name.ifaces"
      for i in "$@"; do
        local idx; idx=$(in_ns "$NS_C" cat "/sys/class/net/$i/ifindex" 2>/dev/null) ||
          fail "no interface $i in $NS_C"
        echo "$idx $i" >> "$dir/$name.ifaces"
      done
      rm -f "$dir/$name.pcap" "$dir/$name.err"
      setsid nohup ip netns exec "$NS_C" tcpdump -i any -y LINUX_SLL2 --immediate-mode -U -n -Z root -s 256 \
        -w "$dir/$name.pcap" > /dev/null 2> "$dir/$name.err" < /dev/null &
      p=$!
      echo "$p" > "$dir/$name.pid"
      wait_for 5 grep -q 'listening on' "$dir/$name.err" ||
        { cat "$dir/$name.err" >&2; do_capture_stop "$name" >/dev/null 2>&1 || true; fail "tcpdump did not start"; }
      say "capture $name: tcpdump pid $p on $* -> $dir/$name.pcap"
      echo "$dir/$name.pcap" ;;
    stop) do_capture_stop "$name" ;;
    *) fail "capture start|stop NAME [IFACES...]" ;;
  esac
}

do_capture_stop() { # NAME: SIGTERM to our tcpdump by PID; prints the pcap path
  local dir f p; dir=$(capture_dir); f=$dir/$1.pid
  p=$(pid_of "$f" tcpdump) || { rm -f "$f"; [ -s "$dir/$1.pcap" ] && echo "$dir/$1.pcap"; return 0; }
  stop_pid "$p" 5 || say "tcpdump $p needed SIGKILL"
  rm -f "$f"
  say "capture $1 stopped: $(grep -E 'packets (captured|dropped by kernel)' "$dir/$1.err" | tr '\n' ' ')"
  echo "$dir/$1.pcap"
}

# leaks PCAP: exit 1 and print them if any packet on the captured outside interfaces is an
# inner packet in the clear or DNS (scripts/lab-leaks.py has the rules).
do_leaks() {
  [ -n "${1:-}" ] || fail "leaks PCAP"
  python3 "$REPO/scripts/lab-leaks.py" check "$@"
}

# leak-inject [IFACE]: the checker's positive control, two clear packets sent on IFACE (c-a).
do_leak_inject() {
  require_root
  in_ns "$NS_C" python3 "$REPO/scripts/lab-leaks.py" inject "${1:-c-a}"
}

# wakeups PID [SECONDS]: context switches (voluntary + nonvoluntary, all threads, from
# /proc/PID/task/*/status) over SECONDS (60), scaled to a minute. Threads that end during the
# window take their counts along, so it is a lower bound for a process that churns threads.
ctx_switches() { # PID -> the sum over its threads now
  local pid=$1 t s=0 v
  for t in /proc/"$pid"/task/*/status; do
    v=$(awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ {s += $2} END {print s + 0}' "$t" 2>/dev/null) || continue
    s=$((s + ${v:-0}))
  done
  echo "$s"
}

do_wakeups() {
  local pid=${1:-} secs=${2:-60} a b threads
  [[ $pid =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ] || fail "wakeups PID [SECONDS]: no process $pid"
  threads=$(ls /proc/"$pid"/task | wc -l)
  a=$(ctx_switches "$pid"); sleep "$secs"
  [ -d "/proc/$pid" ] || fail "process $pid ended during the measurement"
  b=$(ctx_switches "$pid")
  echo "wakeups pid=$pid comm=$(cat /proc/"$pid"/comm) threads=$threads seconds=$secs switches=$((b - a)) per_minute=$(( (b - a) * 60 / secs ))"
}

# --------------------------------------------------------------- baseline --
# The strongSwan reference client's figures for what Roam must do at least as well
# (docs/lab.md records them). Pings go to 203.0.113.2 through the tunnel at 10/s.
LAN_HOST=203.0.113.2

# ping_report FILE: "lost L of N, max gap G ms" from `ping -D` output (gap: the longest time
# between two consecutive replies; 100 ms when nothing is lost)
ping_report() {
  awk '
    /packets transmitted/ { n = $1; r = $4 }
    /bytes from/ { t = substr($1, 2, length($1) - 2) * 1000; if (last) { g = t - last; if (g > max) max = g }; last = t }
    END { printf "lost %d of %d, max gap %d ms", n - r, n, max }' "$1"
}

ping_bg() { # FILE SECONDS: ping -D in roam-c until SECONDS have passed; prints ping's pid
  setsid ip netns exec "$NS_C" ping -D -n -i 0.1 -W 1 -w "$2" "$LAN_HOST" > "$1" 2>&1 < /dev/null &
  echo $!
}

first_reply_after() { # FILE MS: ms from MS to the first reply after it, or nothing
  awk -v from="$2" '/bytes from/ { t = substr($1, 2, length($1) - 2) * 1000; if (t > from) { printf "%d", t - from; exit } }' "$1"
}

wait_reply_after() { # FILE MS LIMIT_S: polls until a reply after MS; prints its delay in ms
  local i d
  for i in $(seq 1 $(( $3 * 10 ))); do
    d=$(first_reply_after "$1" "$2")
    [ -n "$d" ] && { echo "$d"; return 0; }
    sleep 0.1
  done
  return 1
}

client_sa() { # "#ID ADDR" of the server's IKE SA for the reference client (PSK identity)
  run_swanctl server --list-sas --noblock 2>/dev/null | awk -v id="'$PSK_ID'" '
    /^[^ ].*: #[0-9]+,/ { split($2, a, ","); sa = a[1] }
    $1 == "remote" && $2 == id { print sa, $4; exit }'
}

baseline_handover() { # RUNS
  local runs=$1 i from to f out before after
  do_client_path a >/dev/null 2>&1
  "$SELF" up-client psk >/dev/null 2>&1 || { echo "  handover: up-client failed"; return; }
  for i in $(seq 1 "$runs"); do
    for to in b a; do
      from=$([ "$to" = b ] && echo a || echo b)
      f=$LAB/baseline/handover-$from-$to-$i.txt
      before=$(client_sa)
      ip netns exec "$NS_C" ping -D -n -i 0.1 -W 1 -c 80 "$LAN_HOST" > "$f" 2>&1 &
      local p=$!
      sleep 2
      do_client_path "$to" >/dev/null 2>&1
      wait "$p" || true
      after=$(client_sa)
      echo "  handover $from->$to run $i: $(ping_report "$f"); server SA $before -> $after"
    done
  done
  do_down_client >/dev/null 2>&1
  do_client_path all >/dev/null 2>&1
}

restart_run() { # LABEL KILL(0|1) CLIENT_ENV...: one server restart under a 10/s ping
  local label=$1 kill=$2 f p line at d; shift 2
  do_client_path all >/dev/null 2>&1
  env "$@" "$SELF" up-client psk >/dev/null 2>&1 || { echo "  $label: up-client failed"; return; }
  f=$LAB/baseline/restart-$(date +%s%N).txt
  p=$(ping_bg "$f" $(( BASELINE_LIMIT + 10 )))
  sleep 2
  if [ "$kill" = 1 ]; then line=$(do_server_restart --kill 2>/dev/null | tail -n1)
  else line=$(do_server_restart 2>/dev/null | tail -n1); fi
  at=$(sed -n 's/.*listening_at_ms=\([0-9]*\).*/\1/p' <<<"$line")
  if d=$(wait_reply_after "$f" "$at" "$BASELINE_LIMIT"); then
    echo "  $label: traffic again $d ms after charon listened again ($*)"
  else
    echo "  $label: no traffic within $BASELINE_LIMIT s of the restart ($*)"
  fi
  kill -INT "$p" 2>/dev/null || true
  do_down_client >/dev/null 2>&1
}

# A SIGTERM'd charon sends DELETE for its IKE SAs (a clean restart); a SIGKILL'd one cannot
# (a crash), so only DPD finds out. The reference client defaults to dpd_action=clear and
# close_action=none: it recovers from neither by itself.
baseline_restart() { # RUNS
  local runs=$1 i
  BASELINE_LIMIT=40 restart_run "SIGTERM, client defaults" 0 CLIENT_DPD=30s
  BASELINE_LIMIT=40 restart_run "SIGKILL, client defaults" 1 CLIENT_DPD="$BASELINE_DPD"
  for i in $(seq 1 "$runs"); do
    restart_run "SIGTERM run $i" 0 CLIENT_CLOSE_ACTION=restart CLIENT_DPD=30s
  done
  for i in $(seq 1 "$runs"); do
    restart_run "SIGKILL run $i" 1 CLIENT_DPD="$BASELINE_DPD" CLIENT_DPD_ACTION=restart
  done
}

baseline_rebind() { # RUNS
  local runs=$1 i f p at d
  for i in $(seq 1 "$runs"); do
    do_client_path nat >/dev/null 2>&1
    CLIENT_DPD=$BASELINE_DPD "$SELF" up-client psk >/dev/null 2>&1 ||
      { echo "  NAT rebinding run $i: up-client failed"; continue; }
    f=$LAB/baseline/rebind-$i.txt
    p=$(ping_bg "$f" $(( BASELINE_LIMIT + 10 )))
    sleep 2
    local sa0; sa0=$(client_sa)
    at=$(date +%s%3N)
    do_nat_rebind >/dev/null 2>&1
    if d=$(wait_reply_after "$f" "$at" "$BASELINE_LIMIT"); then
      echo "  NAT rebinding run $i: traffic again after $d ms; server SA $sa0 -> $(client_sa) (client dpd_delay $BASELINE_DPD)"
    else
      echo "  NAT rebinding run $i: no traffic within ${BASELINE_LIMIT} s; server SA $sa0 -> $(client_sa) (client dpd_delay $BASELINE_DPD)"
    fi
    kill -INT "$p" 2>/dev/null || true
    do_down_client >/dev/null 2>&1
  done
  do_client_path all >/dev/null 2>&1
}

baseline_wakeups() {
  local p
  do_client_path all >/dev/null 2>&1
  "$SELF" up-client psk >/dev/null 2>&1 || { echo "  idle wakeups: up-client failed"; return; }
  p=$(daemon_pid client)
  sleep 2
  echo "  idle wakeups (connected, idle, dpd_delay $CLIENT_DPD): $(do_wakeups "$p" "$BASELINE_IDLE")"
  do_down_client >/dev/null 2>&1
}

# baseline [RUNS]: BASELINE_DPD (10s) is the client's dpd_delay for the restart and
# rebinding runs, BASELINE_LIMIT (90 s) how long a run waits for traffic, BASELINE_IDLE (60 s)
# the idle window. BASELINE_ONLY=handover|restart|rebind|wakeups runs one part.
do_baseline() {
  require_root
  local runs=${1:-3}
  [[ $runs =~ ^[0-9]+$ ]] && [ "$runs" -ge 1 ] || fail "baseline [RUNS]"
  BASELINE_DPD=${BASELINE_DPD:-10s} BASELINE_LIMIT=${BASELINE_LIMIT:-90} BASELINE_IDLE=${BASELINE_IDLE:-60}
  do_up >/dev/null 2>&1
  mkdir -p "$LAB/baseline"
  echo "strongSwan $(ipsec --version 2>/dev/null | grep -o '5\.[0-9.]*' | head -n1) reference client, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
  local only=${BASELINE_ONLY:-all}
  [ "$only" = all ] || [ "$only" = handover ] && { echo "handover a<->b (MOBIKE), ping 10/s, $runs runs:"; baseline_handover "$runs"; }
  [ "$only" = all ] || [ "$only" = restart ] && { echo "server restart (charon stopped and started; client dpd_delay $BASELINE_DPD unless stated), $runs runs each:"; baseline_restart "$runs"; }
  [ "$only" = all ] || [ "$only" = rebind ] && { echo "NAT rebinding (client behind roam-n), $runs runs:"; baseline_rebind "$runs"; }
  [ "$only" = all ] || [ "$only" = wakeups ] && { echo "idle wakeups:"; baseline_wakeups; }
  do_client_path all >/dev/null 2>&1
}

# ------------------------------------------------- WireGuard (boringtun) --
# A userspace WireGuard pair for scripts/bench.sh (the same topology as the IPsec tunnels):
# boringtun-cli in roam-c (wgc0) and roam-s (wgs0), each by PID file in $LAB/wg, configured with
# wg through boringtun's UAPI socket (/var/run/wireguard/IFACE.sock; wg prefers it over netlink).
# Tunnel addresses in the otherwise unused 192.0.2.192/26, the server's UDP port on 198.51.100.1
# (reached over c-a), and roam-c's route to the LAN (203.0.113.0/24) through wgc0. The LAN's
# answers find 192.0.2.194 on roam-s's wgs0 (connected route), as ESP clients' pool addresses
# find the IPsec TUN. Only one tunnel may route the LAN at a time: wg-up refuses otherwise.
BORINGTUN_BIN=${BORINGTUN_BIN:-$REPO/target/bench-tools/bin/boringtun-cli}
WG_C=wgc0 WG_S=wgs0 WG_PORT=51820 WG_MTU=${WG_MTU:-1420}
WG_C_ADDR=192.0.2.194 WG_S_ADDR=192.0.2.193 WG_NET=192.0.2.192/26
WG_SOCK_DIR=/var/run/wireguard

wg_dir() { echo "$LAB/wg"; }
wg_role_ns() { case $1 in client) echo "$NS_C" ;; server) echo "$NS_S" ;; *) fail "wg role must be client or server" ;; esac; }
wg_role_if() { case $1 in client) echo "$WG_C" ;; server) echo "$WG_S" ;; esac; }
wg_pid() { pid_of "$(wg_dir)/$1.pid" boringtun-cli; }

wg_start() { # ROLE: boringtun-cli in the foreground of its own session, by PID file
  local role=$1 ns dev dir p
  ns=$(wg_role_ns "$role"); dev=$(wg_role_if "$role"); dir=$(wg_dir)
  rm -f "$WG_SOCK_DIR/$dev.sock"
  # --disable-drop-privileges: it runs as root and must keep CAP_NET_ADMIN for its TUN
  setsid nohup ip netns exec "$ns" "$BORINGTUN_BIN" --foreground --disable-drop-privileges "$dev" \
    > "$dir/$role.out" 2>&1 < /dev/null &
  p=$!
  echo "$p" > "$dir/$role.pid"
  if ! wait_for 10 test -S "$WG_SOCK_DIR/$dev.sock" || ! wg_pid "$role" >/dev/null; then
    tail -n 20 "$dir/$role.out" >&2 2>/dev/null || true
    fail "boringtun-cli ($role) did not open $WG_SOCK_DIR/$dev.sock within 10 s"
  fi
}

wg_stop() { # ROLE
  local p dev; dev=$(wg_role_if "$1")
  if p=$(wg_pid "$1"); then
    stop_pid "$p" 5 || say "boringtun-cli ($1, pid $p) needed SIGKILL"
  fi
  rm -f "$(wg_dir)/$1.pid" "$WG_SOCK_DIR/$dev.sock"
  ip -n "$(wg_role_ns "$1")" link del "$dev" 2>/dev/null || true
}

do_wg_up() {
  require_root
  ns_exists "$NS_C" || fail "no lab (lab.sh up first)"
  [ -x "$BORINGTUN_BIN" ] || fail "no boringtun-cli at $BORINGTUN_BIN (cargo install boringtun-cli --locked --root target/bench-tools)"
  command -v wg >/dev/null 2>&1 || fail "no wg (apt-get install wireguard-tools)"
  local dir; dir=$(wg_dir)
  wg_stop client; wg_stop server
  if ip -n "$NS_C" route get 203.0.113.2 >/dev/null 2>&1; then
    fail "roam-c already routes the LAN ($(ip -n "$NS_C" route get 203.0.113.2 | head -n1)): stop the other tunnel first"
  fi
  mkdir -p "$dir"; chmod 700 "$dir"
  local n
  for n in client server; do
    [ -s "$dir/$n.key" ] || (umask 077; wg genkey > "$dir/$n.key")
    wg pubkey < "$dir/$n.key" > "$dir/$n.pub"
  done
  wg_start server
  wg_start client
  in_ns "$NS_S" wg set "$WG_S" listen-port "$WG_PORT" private-key "$dir/server.key" \
    peer "$(cat "$dir/client.pub")" allowed-ips "$WG_C_ADDR/32"
  in_ns "$NS_C" wg set "$WG_C" private-key "$dir/client.key" \
    peer "$(cat "$dir/server.pub")" endpoint "$SERVER_MAIN:$WG_PORT" allowed-ips "$WG_NET,203.0.113.0/24"
  ip -n "$NS_S" addr replace "$WG_S_ADDR/26" dev "$WG_S"
  ip -n "$NS_S" link set "$WG_S" mtu "$WG_MTU" up
  ip -n "$NS_C" addr replace "$WG_C_ADDR/26" dev "$WG_C"
  ip -n "$NS_C" link set "$WG_C" mtu "$WG_MTU" up
  ip -n "$NS_C" route replace 203.0.113.0/24 dev "$WG_C"
  wait_for 10 in_ns "$NS_C" ping -c 1 -W 1 203.0.113.2 ||
    { in_ns "$NS_C" wg show "$WG_C" >&2 || true; fail "no ping through the WireGuard pair within 10 s"; }
  say "WireGuard pair up: boringtun-cli client pid $(wg_pid client) ($WG_C $WG_C_ADDR), server pid $(wg_pid server) ($WG_S $WG_S_ADDR, UDP $WG_PORT), MTU $WG_MTU"
}

do_wg_down() {
  require_root
  wg_stop client; wg_stop server
  say "WireGuard pair down"
}

# --------------------------------------------------------------- commands --
do_up() {
  require_root; check_tools
  mkdir -p "$LAB"
  network_up
  pki_up "$KEY_TYPE"
  server_conf "$KEY_TYPE"
  # a `roam serve` from serve-up holds UDP 500/4500 in roam-s: charon again
  serve_stop || true
  daemon_start server
  iperf_start
  say "up: server 198.51.100.1 / 2001:db8:a::1 / 192.0.2.1 / 192.0.2.129 (NAT), key type $KEY_TYPE, state in $LAB"
}

do_up_client() {
  require_root; check_tools
  local mode=${1:-psk} server=${2:-198.51.100.1} conn c
  case $mode in
    psk|eap|cert) ;;
    cert-rsa|cert-ecdsa|cert-ecdsa384|cert-ed25519) CLIENT_CERT=client-${mode#cert-}; mode=cert ;;
    *) fail "mode must be psk, eap, cert or cert-<rsa|ecdsa|ecdsa384|ed25519>" ;;
  esac
  daemon_pid server >/dev/null || fail "the server is not running (lab.sh up)"
  client_conf "$server"
  daemon_start client
  for c in home-psk home-eap home-cert; do run_swanctl client --terminate --ike "$c" --timeout 5 >/dev/null 2>&1 || true; done
  conn=home-$mode
  local t0 t1
  t0=$(date +%s%N)
  run_swanctl client --initiate --ike "$conn" --child net --timeout 30 > "$LAB/client/initiate.out" 2>&1 ||
    { tail -n 30 "$LAB/client/initiate.out" >&2; fail "initiating $conn failed"; }
  t1=$(date +%s%N)
  say "$conn up via $server in $(( (t1 - t0) / 1000000 )) ms (wall clock of swanctl --initiate)"
}

do_down_client() {
  daemon_stop client
  ip -n "$NS_C" link del ipsec0 2>/dev/null || true
}

do_status() {
  local r
  for r in server client; do
    if daemon_pid "$r" >/dev/null; then
      echo "== $r charon, pid $(daemon_pid "$r")"
      run_swanctl "$r" --list-sas || true
    else
      echo "== $r charon not running"
    fi
  done
  if serve_pid >/dev/null; then
    echo "== roam serve, pid $(serve_pid), output $(serve_dir)/serve.out"
    grep -E '^(listening|tun|client-)' "$(serve_dir)/serve.out" 2>/dev/null | tail -n 20 || true
  fi
  if pid_of "$LAB/lan/iperf3.pid" iperf3 >/dev/null; then
    echo "== iperf3 server in $NS_L, pid $(pid_of "$LAB/lan/iperf3.pid" iperf3)"
  else
    echo "== iperf3 server not running"
  fi
}

do_env() {
  local kt pki keys
  kt=$(active_key_type); pki=$LAB/pki/$kt; keys=$LAB/pki/keys
  local fmt='ROAM_LAB_%s=%q\n'
  [ "${1:-}" = --raw ] && fmt='ROAM_LAB_%s=%s\n'   # KEY=VALUE, unquoted, one per line
  while read -r k v; do printf "$fmt" "$k" "$v"; done <<EOF
DIR $LAB
SCRIPT $SELF
CLIENT_NS $NS_C
SERVER_NS $NS_S
NAT_NS $NS_N
LAN_NS $NS_L
SERVER_ADDR 198.51.100.1
SERVER_ADDR6 2001:db8:a::1
SERVER_ADDR_B 192.0.2.1
SERVER_ADDR_NAT 192.0.2.129
NAT_OUTSIDE_ADDR 192.0.2.130
CLIENT_ADDR 198.51.100.2
CLIENT_ADDR6 2001:db8:a::2
CLIENT_ADDR_B 192.0.2.2
CLIENT_ADDR_NATSIDE 192.0.2.66
LAN_HOST 203.0.113.2
LAN_HOST6 2001:db8:203::2
SERVER_LAN_ADDR 203.0.113.1
POOL4 198.18.0.0/24
POOL6 2001:db8:ffff::/112
DNS4 203.0.113.53
DNS6 2001:db8:203::53
SERVER_ID $SERVER_ID
PSK_ID $PSK_ID
PSK $PSK
EAP_USER $EAP_USER
EAP_PASS $EAP_PASS
KEY_TYPE $kt
CA_CERT $pki/ca.crt
CA_CERT_DER $pki/ca.der
SERVER_CERT $pki/server.crt
CLIENT_RSA_CERT $pki/client-rsa.crt
CLIENT_RSA_KEY $keys/client-rsa.key
CLIENT_RSA_KEY_PKCS8 $keys/client-rsa.pk8.pem
CLIENT_RSA_ID C=CH, O=roam-lab, CN=client-rsa
CLIENT_ECDSA_CERT $pki/client-ecdsa.crt
CLIENT_ECDSA_KEY $keys/client-ecdsa.key
CLIENT_ECDSA_ID C=CH, O=roam-lab, CN=client-ecdsa
CLIENT_ECDSA384_CERT $pki/client-ecdsa384.crt
CLIENT_ECDSA384_KEY $keys/client-ecdsa384.key
CLIENT_ECDSA384_ID C=CH, O=roam-lab, CN=client-ecdsa384
CLIENT_ED25519_CERT $pki/client-ed25519.crt
CLIENT_ED25519_KEY $keys/client-ed25519.key
CLIENT_ED25519_ID C=CH, O=roam-lab, CN=client-ed25519
SERVER_LOG $LAB/server/charon.log
CLIENT_LOG $LAB/client/charon.log
PROFILES $LAB/profiles
SERVE_DIR $LAB/serve
SERVE_OUT $LAB/serve/serve.out
SERVE_TUN $SERVE_TUN
IPERF_PORT 5201
EOF
}

do_profile() {
  local mode=${1:-}; [ $# -gt 0 ] && shift
  local ike="" esp="" server=198.51.100.1 port=500 psk=$PSK pass=$EAP_PASS id="" out=""
  local dpd="" keepalive="" mobike="" ike_rekey="" child_rekey=""
  local rt_initial="" rt_tries="" dpd_tries="" transport="" tcp_port="" tcp_fallback=""
  local tcp_tls="" tls_verify="" tls_name="" udp_retry=""
  num() { [[ $2 =~ ^[0-9]+$ ]] || fail "profile: $1 needs a number of seconds (got '$2')"; echo "$2"; }
  while [ $# -gt 0 ]; do
    case $1 in
      --dpd) dpd=$(num "$1" "${2:-}"); shift 2 ;;
      --keepalive) keepalive=$(num "$1" "${2:-}"); shift 2 ;;
      --ike-rekey) ike_rekey=$(num "$1" "${2:-}"); shift 2 ;;
      --child-rekey) child_rekey=$(num "$1" "${2:-}"); shift 2 ;;
      --retransmit-initial-ms) rt_initial=$(num "$1" "${2:-}"); shift 2 ;;
      --retransmit-tries) rt_tries=$(num "$1" "${2:-}"); shift 2 ;;
      --dpd-tries) dpd_tries=$(num "$1" "${2:-}"); shift 2 ;;
      --transport) transport=$2; shift 2 ;;
      --tcp-port) tcp_port=$(num "$1" "${2:-}"); shift 2 ;;
      --tcp-fallback-ms) tcp_fallback=$(num "$1" "${2:-}"); shift 2 ;;
      --udp-retry-seconds) udp_retry=$(num "$1" "${2:-}"); shift 2 ;;
      --tcp-tls) tcp_tls=true; shift ;;
      --tcp-tls-verify) tls_verify=$2; shift 2 ;;
      --tcp-tls-server-name) tls_name=$2; shift 2 ;;
      --mobike) mobike=true; shift ;;
      --no-mobike) mobike=false; shift ;;
      --ike) ike=$2; shift 2 ;;
      --esp) esp=$2; shift 2 ;;
      --server) server=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      --psk) psk=$2; shift 2 ;;
      --password) pass=$2; shift 2 ;;
      --id) id=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      *) fail "profile: unknown option '$1'" ;;
    esac
  done
  local kt pki; kt=$(active_key_type); pki=$LAB/pki/$kt
  [ -s "$pki/ca.crt" ] || fail "no PKI yet: run lab.sh up first"
  [ -n "$out" ] || out=$LAB/profiles/$mode.toml
  mkdir -p "$(dirname "$out")"
  toml() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }
  {
    echo "# roam client profile written by scripts/lab.sh ($mode, server key type $kt)"
    echo "[server]"
    echo "address = $(toml "$server")"
    echo "port = $port"
    echo "id = $(toml "$SERVER_ID")"
    echo "ca = $(toml "$pki/ca.crt")"
    echo
    echo "[auth]"
    case $mode in
      psk)
        echo 'method = "psk"'
        echo "local_id = $(toml "${id:-$PSK_ID}")"
        echo "psk = $(toml "$psk")" ;;
      eap)
        echo 'method = "eap-mschapv2"'
        [ -n "$id" ] && echo "local_id = $(toml "$id")"
        echo "username = $(toml "$EAP_USER")"
        echo "password = $(toml "$pass")" ;;
      cert-rsa|cert-ecdsa|cert-ecdsa384|cert-ed25519)
        local name=client-${mode#cert-}
        echo 'method = "certificate"'
        [ -n "$id" ] && echo "local_id = $(toml "$id")"
        echo "certificate = $(toml "$pki/$name.crt")"
        echo "private_key = $(toml "$LAB/pki/keys/$name.key")" ;;
      *) fail "profile MODE must be psk, eap, cert-rsa, cert-ecdsa, cert-ecdsa384 or cert-ed25519" ;;
    esac
    if [ -n "$ike$esp" ]; then
      echo
      echo "[crypto]"
      [ -n "$ike" ] && echo "ike = [$(toml "$ike")]"
      [ -n "$esp" ] && echo "esp = [$(toml "$esp")]"
    fi
    if [ -n "$dpd$keepalive$mobike$rt_initial$rt_tries$dpd_tries$transport$tcp_port$tcp_fallback$tcp_tls$udp_retry" ]; then
      echo
      echo "[tunnel]"
      [ -n "$transport" ] && echo "transport = $(toml "$transport")"
      [ -n "$tcp_port" ] && echo "tcp_port = $tcp_port"
      [ -n "$tcp_fallback" ] && echo "tcp_fallback_ms = $tcp_fallback"
      [ -n "$udp_retry" ] && echo "udp_retry_seconds = $udp_retry"
      [ -n "$tcp_tls" ] && echo "tcp_tls = true"
      [ -n "$tls_verify" ] && echo "tcp_tls_verify = $(toml "$tls_verify")"
      [ -n "$tls_name" ] && echo "tcp_tls_server_name = $(toml "$tls_name")"
      [ -n "$mobike" ] && echo "mobike = $mobike"
      [ -n "$dpd" ] && echo "dpd_seconds = $dpd"
      [ -n "$keepalive" ] && echo "keepalive_seconds = $keepalive"
      [ -n "$rt_initial" ] && echo "retransmit_initial_ms = $rt_initial"
      [ -n "$rt_tries" ] && echo "retransmit_tries = $rt_tries"
      [ -n "$dpd_tries" ] && echo "dpd_tries = $dpd_tries"
    fi
    if [ -n "$ike_rekey$child_rekey" ]; then
      echo
      echo "[lifetimes]"
      [ -n "$ike_rekey" ] && echo "ike_rekey_seconds = $ike_rekey"
      [ -n "$child_rekey" ] && echo "child_rekey_seconds = $child_rekey"
    fi
  } > "$out.tmp"
  chmod 600 "$out.tmp"; mv "$out.tmp" "$out"
  echo "$out"
}

do_selftest() {
  local ok=0 bad=0 m
  for m in psk eap cert; do
    if "$SELF" up-client "$m" >/dev/null 2>&1 &&
       in_ns "$NS_C" ping -c 2 -W 2 203.0.113.2 >/dev/null 2>&1 &&
       in_ns "$NS_C" ping -6 -c 2 -W 2 2001:db8:203::2 >/dev/null 2>&1; then
      echo "ok   $m"; ok=$((ok + 1))
    else
      echo "FAIL $m"; bad=$((bad + 1))
    fi
  done
  do_down_client >/dev/null 2>&1
  echo "selftest: $ok passed, $bad failed"
  [ "$bad" -eq 0 ]
}

# ---------------------------------------------------------- measurements --
ms_of() { # HH:MM:SS.mmm -> ms since midnight
  local h m s ms; IFS=':.' read -r h m s ms <<<"$1"
  echo $(( (10#$h * 3600 + 10#$m * 60 + 10#$s) * 1000 + 10#$ms ))
}

stats() { # numbers on stdin -> "min/median/max (n=N)"
  sort -n | awk '{v[NR]=$1} END {
    if (NR == 0) { print "no samples"; exit }
    med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%s / %s / %s ms (min/median/max, n=%d)\n", v[1], med, v[NR], NR }'
}

# one strongSwan-to-strongSwan handshake; prints "LOGMS WALLMS"
ss_handshake_once() { # MODE
  local conn=home-$1 logf=$LAB/client/charon.log before t0 t1 a b
  run_swanctl client --terminate --ike "$conn" --timeout 5 >/dev/null 2>&1 || true
  before=$(stat -c %s "$logf")
  t0=$(date +%s%N)
  run_swanctl client --initiate --ike "$conn" --child net --timeout 30 >/dev/null 2>&1 || return 1
  t1=$(date +%s%N)
  a=$(tail -c +"$((before + 1))" "$logf" | grep -m1 'initiating IKE_SA' | awk '{print $1}')
  b=$(tail -c +"$((before + 1))" "$logf" | grep -m1 -E 'CHILD_SA [^ ]+ established' | awk '{print $1}')
  [ -n "$a" ] && [ -n "$b" ] || return 1
  a=$(ms_of "$a"); b=$(ms_of "$b")
  [ "$b" -lt "$a" ] && b=$((b + 86400000))
  echo "$((b - a)) $(( (t1 - t0) / 1000000 ))"
}

roam_handshake_once() { # BIN PROFILE -> ms from start to the 'connected' line
  local bin=$1 prof=$2 out pid t0 t1 i
  out=$(mktemp "$LAB/roam-hs.XXXXXX")
  t0=$(date +%s%N)
  ip netns exec "$NS_C" "$bin" connect --profile "$prof" > "$out" 2>&1 &
  pid=$!
  for i in $(seq 1 200); do
    grep -q '^connected' "$out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  t1=$(date +%s%N)
  local ok=0; grep -q '^connected' "$out" && ok=1
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$out"
  [ "$ok" = 1 ] || return 1
  # polling granularity is 10 ms
  echo $(( (t1 - t0) / 1000000 ))
}

do_handshake_times() {
  require_root
  local n=${1:-10} m i r
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || fail "handshake-times N (N >= 1)"
  do_up >/dev/null
  echo "strongSwan client -> strongSwan server, server key type $(active_key_type), $n runs each"
  echo "(log: client charon log 'initiating IKE_SA' -> 'CHILD_SA ... established'; wall: swanctl --initiate)"
  for m in psk eap cert; do
    "$SELF" up-client "$m" >/dev/null 2>&1 || { echo "  $m: up-client failed"; continue; }
    : > "$LAB/hs-log.txt"; : > "$LAB/hs-wall.txt"
    for i in $(seq 1 "$n"); do
      if r=$(ss_handshake_once "$m"); then
        echo "${r% *}" >> "$LAB/hs-log.txt"; echo "${r#* }" >> "$LAB/hs-wall.txt"
      fi
    done
    printf '  %-5s log  %s' "$m" "$(stats < "$LAB/hs-log.txt")"; echo
    printf '  %-5s wall %s' "$m" "$(stats < "$LAB/hs-wall.txt")"; echo
  done
  do_down_client >/dev/null 2>&1
  local bin=${ROAM_BIN:-$REPO/target/debug/roam}
  if [ ! -x "$bin" ]; then
    echo "roam: no binary at $bin (set ROAM_BIN or cargo build -p roam-harness); skipped"
    return 0
  fi
  echo "roam connect -> strongSwan server ($bin), $n runs each (wall: process start -> 'connected' line, 10 ms polling)"
  for m in psk eap cert-rsa; do
    local prof; prof=$("$SELF" profile "$m")
    : > "$LAB/hs-roam.txt"
    local failed=0
    for i in $(seq 1 "$n"); do
      if r=$(roam_handshake_once "$bin" "$prof"); then echo "$r" >> "$LAB/hs-roam.txt"; else failed=$((failed + 1)); fi
    done
    printf '  %-8s wall %s' "$m" "$(stats < "$LAB/hs-roam.txt")"
    [ "$failed" -gt 0 ] && printf ' (%d failed)' "$failed"
    echo
  done
}

do_down() {
  require_root
  daemon_stop client 2>/dev/null || true
  wg_stop client 2>/dev/null || true
  wg_stop server 2>/dev/null || true
  serve_stop 2>/dev/null || true
  daemon_stop server 2>/dev/null || true
  iperf_stop 2>/dev/null || true
  local ns p
  for ns in "${NAMESPACES[@]}"; do
    ns_exists "$ns" || continue
    # whatever still runs in our namespaces was started for the lab (a client
    # under test, tcpdump, iperf3): end it by pid, then delete the namespace
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      say "ending pid $p ($(cat "/proc/$p/comm" 2>/dev/null || echo '?')) in $ns"
      kill -TERM "$p" 2>/dev/null || true
    done
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      wait_for 3 sh -c "! test -d /proc/$p" || kill -KILL "$p" 2>/dev/null || true
    done
    ip netns del "$ns" && say "deleted netns $ns"
  done
  if [ "${KEEP_LAB:-0}" = 1 ]; then
    say "kept $LAB (KEEP_LAB=1)"
  else
    case $LAB in
      /tmp/?*) rm -rf "$LAB" ;;
      *) say "not deleting $LAB: outside /tmp" ;;
    esac
  fi
  say "down"
}

cmd=${1:-help}; [ $# -gt 0 ] && shift
case $cmd in
  deps) do_deps ;;
  up) do_up ;;
  down) do_down ;;
  status) do_status ;;
  swanctl) role=${1:?server or client}; shift; run_swanctl "$role" "$@" ;;
  logs) tail -n "${2:-60}" "$LAB/${1:?server or client}/charon.log" ;;
  env) do_env "$@" ;;
  up-client) do_up_client "$@" ;;
  down-client) do_down_client ;;
  profile) do_profile "$@" ;;
  selftest) do_selftest ;;
  iperf) require_root; iperf_start ;;
  iperf-restart) require_root; iperf_stop; iperf_start ;;
  server-stop) do_server_stop ;;
  client-path) do_client_path "$@" ;;
  nat-rebind) do_nat_rebind ;;
  loss) do_loss "$@" ;;
  block-udp) do_block_udp "$@" ;;
  tcp-reset) do_tcp_reset ;;
  server-restart) do_server_restart "$@" ;;
  server-reconfig) do_server_reconfig ;;
  capture) do_capture "$@" ;;
  leaks) do_leaks "$@" ;;
  leak-inject) do_leak_inject "$@" ;;
  wakeups) do_wakeups "$@" ;;
  baseline) do_baseline "$@" ;;
  serve-profile) do_serve_profile "$@" ;;
  serve-up) do_serve_up "$@" ;;
  serve-down) do_serve_down ;;
  handshake-times) do_handshake_times "$@" ;;
  wg-up) do_wg_up ;;
  wg-down) do_wg_down ;;
  wg-pid) wg_pid "${1:?client or server}" || fail "no boringtun-cli ($1) running" ;;
  help|-h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
