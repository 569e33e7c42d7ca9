#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (nightly, cargo-fuzz), each for SECONDS (default 60)
# or until RUNS executions (default: no limit), whichever comes first, and prints the
# executions and wall time of each. Seeds fuzz/corpus/<target> from the strongSwan captures
# in core/proto/tests/fixtures and the test PKI on first use. Crashes land in
# fuzz/artifacts/<target>/. Not part of CI.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS] [RUNS]
#   scripts/fuzz.sh all 1800 10000000    # the issue's bar: 10 M executions or 30 minutes
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TARGETS=(ike_message sk_open fragments esp_decap profile_toml x509 session_datagrams tcp_frames import_sswan import_mobileconfig)
which=${1:-all}
secs=${2:-60}
runs=${3:--1}
if [[ $which != all ]]; then TARGETS=("$which"); fi

command -v cargo-fuzz >/dev/null || { echo "cargo install cargo-fuzz" >&2; exit 1; }
python3 seed.py
for t in "${TARGETS[@]}"; do cargo +nightly fuzz build "$t" >/dev/null; done
status=0
printf '%-18s %8s %14s %10s %s\n' target seconds executions exec/s result
for t in "${TARGETS[@]}"; do
    log=$(mktemp)
    mkdir -p "artifacts/$t"
    rc=0
    start=$(date +%s)
    cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -runs="$runs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=${execs:-0}
    took=$(( $(date +%s) - start ))
    took=$(( took > 0 ? took : 1 ))
    result=ok
    if [[ $rc -ne 0 ]]; then
        result="FAILED (rc $rc): $(grep -m1 -E 'ERROR: libFuzzer|panicked at|SUMMARY' "$log" || true)"
        result="$result; input: $(grep -m1 -o 'artifacts/[^ ]*' "$log" || echo '?')"
        cp "$log" "artifacts/$t/last-failure.log"
        status=1
    fi
    printf '%-18s %8s %14s %10s %s\n' "$t" "$took" "$execs" "$((execs / took))" "$result"
    rm -f "$log"
done
exit $status
