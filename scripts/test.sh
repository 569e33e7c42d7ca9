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

# What the tests need: installed when we are root, else named (and the run fails on it).
if ! scripts/install-deps.sh --check >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    scripts/install-deps.sh || exit 2
  else
    echo "test.sh: some test dependencies are missing (run: sudo scripts/install-deps.sh):"
    scripts/install-deps.sh --check | sed 's/^/  /'
  fi
fi

start=$(date +%s)
# --no-fail-fast: run every test binary even after one failed
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# The bindings: Kotlin on the JVM, the Swift static checks, and the mobile targets. The
# workspace run has ring's AEAD (the harness turns roam-proto's `ring` feature on); the
# protocol tests run once more on RustCrypto's, the backend of the mobile checks. The one test
# ignored in debug builds (10 000 accumulated ML-KEM vectors) runs here, in release. And the
# README's first command, the demo, in the release build (linked as harness/build.rs says).
extra_failed=0
for step in "cargo test -p roam-proto --no-default-features" \
            "cargo test --release -p roam-proto --lib -- --ignored crypto::kem::tests::accumulated_10000" \
            "cargo run --release -q -p roam-harness -- demo" \
            "scripts/test-kotlin.sh" "scripts/check-swift.sh" \
            "cargo check -p roam-ffi --target aarch64-linux-android" \
            "cargo check -p roam-ffi --target aarch64-apple-ios"; do
  echo "== $step"
  $step 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "test.sh: FAILED: $step"; extra_failed=$((extra_failed + 1)); }
done
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
[ "$extra_failed" -eq 0 ] || verdict=FAILED
# the binding scripts print their own "N passed, N failed"
bpassed=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | awk '{s += $1} END {print s + 0}')
bfailed=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | awk '{s += $3} END {print s + 0}')
passed=$((passed + bpassed))
failed=$((failed + bfailed))

echo
echo "SUMMARY: $verdict: $passed passed, $failed failed, $ignored ignored, $skipped lab tests skipped, $binaries test binaries, $extra_failed binding/mobile steps failed, cargo exit $rc, ${secs}s"
[ "$verdict" = OK ]
