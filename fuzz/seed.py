"""Writes the seed corpora of the fuzz targets into corpus/<target> (only missing files):
the strongSwan captures in core/proto/tests/fixtures, the test PKI, and a few profiles."""
import pathlib
import struct

here = pathlib.Path(__file__).resolve().parent
fixtures = sorted((here / "../core/proto/tests/fixtures").glob("*/*.bin"))
pki = here / "../core/proto/tests/data/pki"


def rec(b):
    return struct.pack(">H", len(b)) + b


def put(target, name, data):
    d = here / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    f = d / ("seed-" + name)
    if not f.exists():
        f.write_bytes(data)


for f in fixtures:
    name = f.parent.name + "-" + f.stem
    m = f.read_bytes()
    put("ike_message", name, m)
    # sk_open: the SK body of the capture as hostile ciphertext (mode 0), and its bytes as a
    # plaintext to seal (mode 1, first inner payload Notify).
    put("sk_open", name + "-raw", bytes([0, 0, 41]) + m[32:])
    put("sk_open", name + "-seal", bytes([1, 1, 41]) + m[28:])
    put("fragments", name, bytes([0]) + rec(bytes([0]) + m))
    put("session_datagrams", name + "-500", bytes([0]) + rec(bytes([0]) + m))
    put("session_datagrams", name + "-4500", bytes([1]) + rec(bytes([1, 0, 0, 0, 0]) + m))

# fragments: a sealed message in two and in three fragments (kind 1: id, number, total, first).
for alg in range(4):
    two = rec(bytes([1, 1, 1, 2, 41]) + b"A" * 40) + rec(bytes([1, 1, 2, 2, 0]) + b"B" * 40)
    put("fragments", "sealed-2-%d" % alg, bytes([alg]) + two)
    three = b"".join(rec(bytes([1, 5, n, 3, 41 if n == 1 else 0]) + bytes([n]) * 30) for n in (1, 2, 3))
    put("fragments", "sealed-3-%d" % alg, bytes([alg]) + three)

# esp_decap: authentic packets (kind 1) and a raw one, every algorithm, ESN on and off.
ipv4 = bytes([0x45, 0, 0, 40] + [0] * 36)
ipv6 = bytes([0x60] + [0] * 39)
for alg in range(4):
    for esn in (0, 1):
        put("esp_decap", "%d-%d" % (alg, esn),
            bytes([alg, esn]) + rec(bytes([1]) + ipv4) + rec(bytes([1]) + ipv6) + rec(bytes([0]) + ipv4))

# session_datagrams: the handshake prefix, then the responder's next answers mutated or not,
# time passing, and a stranger's datagram.
put("session_datagrams", "connected", bytes([1]) + rec(bytes([2, 40])) + rec(bytes([3])) + rec(bytes([3, 30, 1])))
put("session_datagrams", "connected-stranger", bytes([1]) + rec(bytes([5, 0, 0, 0, 0]) + fixtures[0].read_bytes()))

for c in sorted(pki.glob("*.crt")) + [pki / "chain.pem", pki / "root-ca.der"]:
    put("x509", c.name, c.read_bytes())
    if c.suffix == ".crt":
        put("x509", c.name + "-with-chain", c.read_bytes() + (pki / "chain.pem").read_bytes())

profiles = {
    "psk": """[server]
address = "vpn.example.org"
port = 4500
id = "vpn.example.org"

[auth]
method = "psk"
local_id = "client@example.org"
psk = "secret-secret-secret"

[crypto]
ike = ["aes256gcm16-prfsha384-ecp384"]
esp = ["aes256gcm16"]
allow_weak = []

[tunnel]
mobike = true
dpd_seconds = 30
keepalive_seconds = 20
mtu = 1400
reconnect = true

[lifetimes]
ike_rekey_seconds = 14400
child_rekey_seconds = 3600
jitter_seconds = 1440
""",
    "eap": """[server]
address = "192.0.2.1"
id = "C=CH, O=ref-lab, CN=server"
ca = "root-ca.crt"

[auth]
method = "eap-mschapv2"
username = "alice"
password = "pw"
""",
    "cert": """[server]
address = "2001:db8::1"
ca = "chain.pem"

[auth]
method = "certificate"
certificate = "client-p256.crt"
private_key = "client-p256.key"
""",
}
for name, text in profiles.items():
    put("profile_toml", name + ".toml", text.encode())

# tcp_frames: the captures as an initiator's stream (prefix, IKE frames, an ESP frame), read
# in two pieces; mode 1 is the responder's side (prefix expected), cap 65535.
for f in fixtures[:8]:
    m = f.read_bytes()
    s = b"IKETCP" + struct.pack(">H", len(m) + 6) + bytes(4) + m
    esp = bytes([0x11, 0x22, 0x33, 0x44]) + bytes(range(60))
    s += struct.pack(">H", len(esp) + 2) + esp
    half = len(s) // 2
    put("tcp_frames", f.parent.name + "-" + f.stem, bytes([1, 0xff, 0xff]) + rec(s[:half]) + s[half:])
# import_sswan / import_mobileconfig: the example files of core/runtime/tests/data/import.
examples = here / "../core/runtime/tests/data/import"
for f in sorted(examples.glob("*.sswan")):
    put("import_sswan", f.name, f.read_bytes())
for f in sorted(examples.glob("*.mobileconfig")):
    put("import_mobileconfig", f.name, f.read_bytes())
