#!/usr/bin/env bash
# scripts/test.sh -- Roam's test command: every test of the workspace, all output, then one
# summary line. Exits non-zero if anything failed (a test, a build, a doc test), and, when
# ROAM_REQUIRE_LAB=1 (CI), if any lab test was skipped.
#
# Usage: scripts/test.sh [extra cargo test arguments]
# The interop tests (harness/tests/lab_interop.rs) need root and the lab packages
# (scripts/lab.sh deps); without root they print "SKIPPED (needs root): <name>".
set -uo pipefail

cd "$(dirname "$(readlink -f "$0")")/.." || exit 2
log=$(mktemp "${TMPDIR:-/tmp}/roam-test.XXXXXX")
trap 'rm -f "$log"' EXIT

start=$(date +%s)
# --no-fail-fast: run every test binary even after one failed
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
secs=$(( $(date +%s) - start ))

count() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
passed=$(count passed)
failed=$(count failed)
ignored=$(count ignored)
binaries=$(grep -cE '^test result:' "$log")
skipped=$(grep -cE '^SKIPPED \(' "$log")

verdict=OK
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] || verdict=FAILED
if [ "$skipped" -gt 0 ] && [ "${ROAM_REQUIRE_LAB:-0}" = 1 ]; then
  echo "test.sh: ROAM_REQUIRE_LAB=1 but $skipped lab test(s) were skipped:"
  grep -E '^SKIPPED \(' "$log" | sed 's/^/  /'
  verdict=FAILED
fi
[ "$binaries" -eq 0 ] && verdict=FAILED   # nothing ran: a build failure

echo
echo "SUMMARY: $verdict: $passed passed, $failed failed, $ignored ignored, $skipped lab tests skipped, $binaries test binaries, cargo exit $rc, ${secs}s"
[ "$verdict" = OK ]
