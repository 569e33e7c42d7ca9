#!/usr/bin/env python3
"""scripts/lab-leaks.py -- the lab's leak checker (run by `lab.sh leaks` / `lab.sh leak-inject`).

  lab-leaks.py check PCAP [--ifaces FILE]
      Reads a pcap of `tcpdump -i any -y LINUX_SLL2` (what `lab.sh capture` writes) and looks
      at the packets of the interfaces named in FILE (lines "IFINDEX NAME"; default: the
      PCAP's sidecar, PCAP with .ifaces in place of .pcap). A packet there is a leak when its
      outer IP source or destination lies in a tunnel-only range (the virtual-IP pools
      198.18.0.0/24 and 2001:db8:ffff::/112, the protected LAN 203.0.113.0/24 and
      2001:db8:203::/64) or when it is DNS (UDP or TCP port 53) outside the tunnel.
      Prints every leak and exits 1; prints a one-line summary and exits 0 when there is none;
      exits 2 when the capture cannot be read.

  lab-leaks.py inject IFACE
      The positive control: sends, with a raw packet socket on IFACE (run it inside the
      client namespace), one inner packet in the clear (198.18.0.200 -> 203.0.113.2, UDP) and
      one DNS query (198.51.100.2 -> 198.51.100.53, UDP 53). A capture of IFACE must flag both.

Only the standard library: the lab machines have no scapy.
"""
import ipaddress
import socket
import struct
import sys

TUNNEL_ONLY = [ipaddress.ip_network(n) for n in (
    "198.18.0.0/24", "2001:db8:ffff::/112",    # virtual-IP pools
    "203.0.113.0/24", "2001:db8:203::/64",     # the protected LAN (and its DNS servers)
)]
DNS_PORT = 53
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_LINUX_SLL = 113
LINKTYPE_ETHERNET = 1
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
PKT_TYPES = {0: "in", 1: "in-bcast", 2: "in-mcast", 3: "in-other", 4: "out"}


def read_pcap(path):
    """Yields (seconds, linktype, frame) of a classic pcap file (either byte order, us or ns)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError(f"{path}: not a pcap file (too short)")
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
             b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if order is None:
        raise ValueError(f"{path}: not a classic pcap file (pcapng is not read)")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(order + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        if len(frame) < incl:
            break  # a capture cut short by the kill: the last record is partial
        yield sec + frac / (1e9 if nano else 1e6), linktype, frame


def l3_of(linktype, frame):
    """(ifindex or None, direction, ethertype, L3 bytes) of one frame."""
    if linktype == LINKTYPE_LINUX_SLL2 and len(frame) >= 20:
        proto, _res, ifindex, _hatype, pkt_type, _alen = struct.unpack(">HHIHBB", frame[:12])
        return ifindex, PKT_TYPES.get(pkt_type, str(pkt_type)), proto, frame[20:]
    if linktype == LINKTYPE_LINUX_SLL and len(frame) >= 16:
        pkt_type, = struct.unpack(">H", frame[:2])
        proto, = struct.unpack(">H", frame[14:16])
        return None, PKT_TYPES.get(pkt_type, str(pkt_type)), proto, frame[16:]
    if linktype == LINKTYPE_ETHERNET and len(frame) >= 14:
        proto, = struct.unpack(">H", frame[12:14])
        return None, "?", proto, frame[14:]
    return None, "?", None, b""


def parse_ip(proto, pkt):
    """(src, dst, l4 protocol number, sport, dport) or None when it is no IP packet."""
    if proto == ETH_P_IP and len(pkt) >= 20 and pkt[0] >> 4 == 4:
        ihl = (pkt[0] & 0x0F) * 4
        l4 = pkt[9]
        src, dst = ipaddress.ip_address(pkt[12:16]), ipaddress.ip_address(pkt[16:20])
        frag_off = struct.unpack(">H", pkt[6:8])[0] & 0x1FFF
        ports = pkt[ihl:ihl + 4] if frag_off == 0 else b""
    elif proto == ETH_P_IPV6 and len(pkt) >= 40 and pkt[0] >> 4 == 6:
        l4 = pkt[6]
        src, dst = ipaddress.ip_address(pkt[8:24]), ipaddress.ip_address(pkt[24:40])
        ports = pkt[40:44]
    else:
        return None
    sport = dport = None
    if l4 in (6, 17) and len(ports) == 4:
        sport, dport = struct.unpack(">HH", ports)
    return src, dst, l4, sport, dport


def why_leak(src, dst, l4, sport, dport):
    for a in (src, dst):
        for net in TUNNEL_ONLY:
            if a.version == net.version and a in net:
                return f"inner address {a} ({net}) in the clear"
    if l4 in (6, 17) and DNS_PORT in (sport, dport):
        return "DNS outside the tunnel"
    return None


def read_ifaces(path):
    names = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit():
                names[int(parts[0])] = parts[1]
    return names


def check(pcap, ifaces_file):
    names = read_ifaces(ifaces_file) if ifaces_file else None
    seen = leaks = 0
    per_iface = {}
    for ts, linktype, frame in read_pcap(pcap):
        ifindex, direction, proto, pkt = l3_of(linktype, frame)
        if names is not None:
            if ifindex not in names:
                continue  # lo, the TUN (inner packets belong there), other links
            iface = names[ifindex]
        else:
            iface = "?"
        ip = parse_ip(proto, pkt)
        if ip is None:
            continue
        seen += 1
        per_iface[iface] = per_iface.get(iface, 0) + 1
        reason = why_leak(*ip)
        if reason:
            leaks += 1
            src, dst, l4, sport, dport = ip
            name = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}.get(l4, f"proto-{l4}")
            sp = f":{sport}" if sport is not None else ""
            dp = f":{dport}" if dport is not None else ""
            print(f"LEAK {ts:.6f} {iface} {direction} {name} {src}{sp} -> {dst}{dp}: {reason}")
    where = ", ".join(f"{k} {v}" for k, v in sorted(per_iface.items())) or "none"
    if leaks:
        print(f"leaks: {leaks} of {seen} outside packets leak ({where})")
        return 1
    print(f"leaks: none in {seen} outside packets ({where})")
    return 0


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f">{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4_udp(src, dst, sport, dport, payload):
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack(">H", checksum(hdr)) + hdr[12:]
    return hdr + udp


def inject(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    mac = s.getsockname()[4]
    eth = b"\xff" * 6 + mac + struct.pack(">H", ETH_P_IP)
    # an inner packet in the clear, and a DNS query (id 0x1234, "leak.example.", A)
    s.send(eth + ipv4_udp("198.18.0.200", "203.0.113.2", 40000, 9, b"roam-leak-probe"))
    query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x04leak\x07example\x00" + \
        struct.pack(">HH", 1, 1)
    s.send(eth + ipv4_udp("198.51.100.2", "198.51.100.53", 40001, DNS_PORT, query))
    s.close()
    print(f"injected 2 clear packets on {iface}")
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "check":
        pcap = argv[1]
        ifaces = None
        if len(argv) >= 4 and argv[2] == "--ifaces":
            ifaces = argv[3]
        elif pcap.endswith(".pcap"):
            ifaces = pcap[:-5] + ".ifaces"
        try:
            open(ifaces).close() if ifaces else None
        except OSError:
            ifaces = None
        try:
            return check(pcap, ifaces)
        except (OSError, ValueError) as e:
            print(f"leaks: cannot read {pcap}: {e}", file=sys.stderr)
            return 2
    if len(argv) == 2 and argv[0] == "inject":
        return inject(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
