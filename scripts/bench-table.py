#!/usr/bin/env python3
"""Prints the cargo bench results of roam-proto as Markdown tables, from criterion's own
files (target/criterion/*/.../new/{benchmark,estimates}.json): ESP beside the raw AEAD per
algorithm, backend and size with the ESP/raw ratios, the handshake CPU per side, the codec.

Usage: scripts/bench-table.py [target/criterion]
Run the benches first:
  cargo bench -p roam-proto --features ring -- --warm-up-time 1 --measurement-time 3
Figures are criterion's median (less sensitive than the mean to the other jobs on a
shared machine); ratios compare figures of the same run.
"""
import json
import os
import sys


def load(root):
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            b = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            e = json.load(f)
        ns = e["median"]["point_estimate"]
        out[(b["group_id"], b["function_id"], b.get("value_str"))] = ns
    return out


def gbps(size, ns):
    return size / ns  # bytes per ns = GB/s


def esp_table(r):
    rows = []
    groups = sorted({g for (g, _, _) in r if g.startswith("esp_")})
    print("| algorithm | backend | size | raw seal GB/s | ESP encap GB/s | encap/seal"
          " | in place GB/s | in place/seal | raw open GB/s | ESP decap GB/s | decap/open |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for g in groups:
        _, alg, backend = g.split("_", 2)
        sizes = sorted({int(v) for (gg, _, v) in r if gg == g})
        for s in sizes:
            v = str(s)
            get = lambda f: r.get((g, f, v))
            seal, enc, inpl = get("raw seal"), get("esp encapsulate"), get("esp encapsulate in place")
            opn, dec = get("raw open"), get("esp decapsulate")
            if None in (seal, enc, inpl, opn, dec):
                continue
            print(f"| {alg} | {backend} | {s} | {gbps(s, seal):.2f} | {gbps(s, enc):.2f}"
                  f" | {seal / enc:.2f} | {gbps(s, inpl):.2f} | {seal / inpl:.2f}"
                  f" | {gbps(s, opn):.2f} | {gbps(s, dec):.2f} | {opn / dec:.2f} |")
            rows.append((alg, backend, s, seal / enc, opn / dec))
    return rows


def handshake_table(r):
    cases = sorted({v for (g, f, v) in r if g == "handshake"})
    if not cases:
        return
    print("| handshake (IKE_SA_INIT + IKE_AUTH) | client CPU | server CPU |")
    print("|---|---:|---:|")
    for c in cases:
        cl, sv = r.get(("handshake", "client", c)), r.get(("handshake", "server", c))
        if cl is None or sv is None:
            continue
        print(f"| {c} | {cl / 1000:.0f} µs | {sv / 1000:.0f} µs |")


def codec_table(r):
    items = sorted((f, ns) for (g, f, _v), ns in r.items() if g == "codec")
    if not items:
        return
    print("| codec | time |")
    print("|---|---:|")
    for f, ns in items:
        print(f"| {f} | {ns:.0f} ns |")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
    r = load(root)
    if not r:
        sys.exit(f"bench-table.py: no criterion results under {root}")
    rows = esp_table(r)
    print()
    handshake_table(r)
    print()
    codec_table(r)
    worst = [x for x in rows if x[2] == 1400]
    if worst:
        print()
        lo = min(worst, key=lambda x: min(x[3], x[4]))
        print(f"Lowest ESP/raw ratio at 1400 bytes (copying encap, decap): {min(lo[3], lo[4]):.2f}"
              f" ({lo[0]}, {lo[1]}); target 0.90")


if __name__ == "__main__":
    main()
