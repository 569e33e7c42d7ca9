#!/usr/bin/env bash
# scripts/capture-fixtures.sh -- records real strongSwan IKEv2 messages in the lab
# and stores each one as a fixture for core/proto/tests/fixtures.rs.
#
# For each mode (psk, eap, cert with the RSA-3072 client certificate, so that
# IKE_AUTH is fragmented in both directions) it runs tcpdump in roam-c while the
# strongSwan reference client connects and disconnects, then extracts every IKE
# message (UDP 500, and UDP 4500 with the 4-byte non-ESP marker removed; ESP
# and NAT keepalives are skipped) into
#   core/proto/tests/fixtures/<mode>/<n>-<exchange>-<req|resp>.bin
# and writes core/proto/tests/fixtures/manifest.tsv with the header fields and
# the outer payload chain as read by the independent parser below.
#
# Needs root and the lab packages; it brings the lab up (RSA server) itself and
# leaves it up. Usage: scripts/capture-fixtures.sh [OUT_DIR]
set -euo pipefail

HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LAB_SH=$HERE/lab.sh
OUT=${1:-$REPO/core/proto/tests/fixtures}
export LAB=${LAB:-/tmp/roam-lab}
WORK=$LAB/capture
[ "$(id -u)" -eq 0 ] || { echo "capture-fixtures: needs root" >&2; exit 1; }
command -v tcpdump >/dev/null || { echo "capture-fixtures: tcpdump missing" >&2; exit 1; }

KEY_TYPE=rsa "$LAB_SH" up >/dev/null
"$LAB_SH" down-client >/dev/null 2>&1 || true
rm -rf "$WORK"; mkdir -p "$WORK"

TCPDUMP_PID=
stop_tcpdump() {
  [ -n "$TCPDUMP_PID" ] || return 0
  kill -INT "$TCPDUMP_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do kill -0 "$TCPDUMP_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$TCPDUMP_PID" 2>/dev/null || true
  wait "$TCPDUMP_PID" 2>/dev/null || true
  TCPDUMP_PID=
}
trap stop_tcpdump EXIT

for mode in psk eap cert; do
  pcap=$WORK/$mode.pcap
  ip netns exec roam-c tcpdump -i c-a --immediate-mode -U -n -s 0 -w "$pcap" 'udp port 500 or udp port 4500' \
    2> "$WORK/$mode.tcpdump.err" &
  TCPDUMP_PID=$!
  for i in $(seq 1 50); do grep -q 'listening on' "$WORK/$mode.tcpdump.err" && break; sleep 0.1; done
  grep -q 'listening on' "$WORK/$mode.tcpdump.err" || { cat "$WORK/$mode.tcpdump.err" >&2; exit 1; }
  CLIENT_CERT=client-rsa "$LAB_SH" up-client "$mode" >/dev/null
  # a clean DELETE (INFORMATIONAL) exchange at the end
  "$LAB_SH" swanctl client --terminate --ike "home-$mode" --timeout 10 >/dev/null
  sleep 0.3
  stop_tcpdump
  "$LAB_SH" down-client >/dev/null 2>&1
done

# The extractor: a small pcap reader and IKE header/payload-chain walker,
# independent of roam-proto (its output is what fixtures.rs compares with).
python3 - "$OUT" "$WORK"/psk.pcap "$WORK"/eap.pcap "$WORK"/cert.pcap <<'PY'
"""Extract IKEv2 messages from pcap files into fixture files and a manifest.

Usage: python3 - OUT_DIR MODE.pcap... (fed on stdin)

Each pcap (classic libpcap format, Ethernet, as written by `tcpdump -w`) is read
in order; every UDP datagram on port 500, or on port 4500 starting with the
4-byte non-ESP marker (which is removed), is written as
OUT_DIR/<mode>/<n>-<exchange>-<req|resp>.bin, where <mode> is the pcap's base
name. ESP (non-zero SPI on 4500) and NAT keepalives (a single 0xff) are skipped.

OUT_DIR/manifest.tsv gets one line per fixture with what this small parser,
which is independent of roam-proto, reads from it: the header fields and the
outer (unencrypted) payload chain, notify types in parentheses and the fragment
number/total of an SKF payload.
"""
import os
import struct
import sys

EXCHANGES = {34: "ike_sa_init", 35: "ike_auth", 36: "create_child_sa", 37: "informational"}
PAYLOAD_NAMES = {
    33: "SA", 34: "KE", 35: "IDI", 36: "IDR", 37: "CERT", 38: "CERTREQ", 39: "AUTH",
    40: "NONCE", 41: "NOTIFY", 42: "DELETE", 43: "VENDOR", 44: "TSI", 45: "TSR",
    46: "SK", 47: "CP", 48: "EAP", 53: "SKF",
}
SK, SKF, NOTIFY = 46, 53, 41


def pcap_packets(path):
    """Yields the link-layer frames of a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f"{path}: link type {linktype}, expected Ethernet (1)")
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
        off += 16
        yield data[off:off + incl]
        off += incl


def udp_payload(frame):
    """Returns (src_port, dst_port, payload) of a UDP-in-IPv4/IPv6 Ethernet frame."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    if ethertype == 0x0800 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        if ip[9] != 17 or struct.unpack("!H", ip[6:8])[0] & 0x3FFF:
            return None  # not UDP, or an IP fragment
        udp = ip[ihl:total]
    elif ethertype == 0x86DD and len(ip) >= 40:
        if ip[6] != 17:
            return None
        udp = ip[40:40 + struct.unpack("!H", ip[4:6])[0]]
    else:
        return None
    if len(udp) < 8:
        return None
    sport, dport, ulen = struct.unpack("!HHH", udp[:6])
    return sport, dport, udp[8:ulen]


def outer_chain(msg):
    """Reads the IKE header and the unencrypted payload chain; returns a dict."""
    spi_i, spi_r, first, version, exch, flags, msgid, length = struct.unpack("!QQBBBBII", msg[:28])
    chain = []
    nxt, off = first, 28
    skf = ""
    first_inner = ""
    while nxt != 0:
        if off + 4 > len(msg):
            raise ValueError("truncated payload header")
        this = nxt
        nxt = msg[off]
        plen = struct.unpack("!H", msg[off + 2:off + 4])[0]
        body = msg[off + 4:off + plen]
        name = PAYLOAD_NAMES.get(this, str(this))
        if this == NOTIFY:
            ntype = struct.unpack("!H", body[2:4])[0]
            name = f"NOTIFY({ntype})"
        chain.append(name)
        if this in (SK, SKF):
            first_inner = str(nxt)
            if this == SKF:
                number, total = struct.unpack("!HH", body[:4])
                skf = f"{number}/{total}"
            break
        off += plen
    return {
        "spi_i": f"{spi_i:016x}", "spi_r": f"{spi_r:016x}", "version": f"{version:#04x}",
        "exchange": str(exch), "flags": f"{flags:#04x}", "msgid": str(msgid),
        "length": str(length), "chain": ",".join(chain) or "-", "skf": skf or "-",
        "first_inner": first_inner or "-",
    }


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    rows = []
    for pcap in sys.argv[2:]:
        mode = os.path.splitext(os.path.basename(pcap))[0]
        mdir = os.path.join(out, mode)
        os.makedirs(mdir, exist_ok=True)
        for old in os.listdir(mdir):
            if old.endswith(".bin"):
                os.remove(os.path.join(mdir, old))
        n = 0
        for frame in pcap_packets(pcap):
            udp = udp_payload(frame)
            if udp is None:
                continue
            sport, dport, data = udp
            if 4500 in (sport, dport):
                if data == b"\xff" or len(data) < 4 or data[:4] != b"\0\0\0\0":
                    continue  # keepalive or ESP
                data = data[4:]
            elif 500 not in (sport, dport):
                continue
            if len(data) < 28:
                continue
            info = outer_chain(data)
            n += 1
            exch = EXCHANGES.get(int(info["exchange"]), "exchange" + info["exchange"])
            kind = "resp" if int(info["flags"], 16) & 0x20 else "req"
            name = f"{n:02d}-{exch}-{kind}.bin"
            with open(os.path.join(mdir, name), "wb") as f:
                f.write(data)
            rows.append([f"{mode}/{name}", info["exchange"], info["flags"], info["msgid"],
                         info["length"], info["spi_i"], info["spi_r"], info["version"],
                         info["chain"], info["first_inner"], info["skf"]])
        print(f"{mode}: {n} IKE messages", file=sys.stderr)
    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        f.write("# file\texchange\tflags\tmsgid\tlength\tspi_i\tspi_r\tversion\touter_chain\t"
                "first_inner\tskf_number/total\n")
        for r in rows:
            f.write("\t".join(r) + "\n")


if __name__ == "__main__":
    main()
PY
echo "fixtures written to $OUT"
