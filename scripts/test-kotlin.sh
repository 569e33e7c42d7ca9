#!/usr/bin/env bash
# scripts/test-kotlin.sh -- the Kotlin JVM tests: generates fresh bindings (with the test
# fixtures), compiles them with the Android shell's plain-Kotlin glue and the tests, and runs
# them on Java 17 through JNA. Prints "N passed, N failed"; exits non-zero on any failure
# (a missing tool, a build or a test).
#
# Needs: kotlinc from the npm package kotlin-compiler (npm install -g kotlin-compiler@2.4.20),
# JNA from Debian (apt-get install libjna-java libjna-jni), a Java 17 runtime.
set -uo pipefail

cd "$(dirname "$(readlink -f "$0")")/.." || exit 2
fail() { echo "test-kotlin.sh: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

kotlin_home=${KOTLIN_HOME:-}
if [ -z "$kotlin_home" ]; then
  if command -v kotlinc >/dev/null 2>&1; then
    kotlin_home=$(dirname "$(dirname "$(readlink -f "$(command -v kotlinc)")")")
  elif command -v npm >/dev/null 2>&1 && [ -x "$(npm root -g)/kotlin-compiler/bin/kotlinc" ]; then
    kotlin_home="$(npm root -g)/kotlin-compiler"
  fi
fi
[ -n "$kotlin_home" ] && [ -x "$kotlin_home/bin/kotlinc" ] \
  || fail "no kotlinc: npm install -g kotlin-compiler@2.4.20"
jna=${JNA_JAR:-/usr/share/java/jna.jar}
[ -f "$jna" ] || fail "no JNA at $jna: apt-get install libjna-java libjna-jni"
command -v java >/dev/null 2>&1 || fail "no java (Java 17)"

work=target/kotlin-tests
rm -rf "$work"
mkdir -p "$work"
ROAM_FFI_FEATURES=test-fixture scripts/gen-bindings.sh "$work/bindings" || fail "gen-bindings.sh failed"

klib="$kotlin_home/lib"
cp_compile="$jna:$klib/kotlin-test.jar"
sources=(
  "$work/bindings/kotlin/org/roam/core/roam_ffi.kt"
  android/roam/src/main/kotlin/org/roam/vpn/glue/*.kt
  android/roam/src/test/kotlin/org/roam/vpn/glue/*.kt
  android/jvm-tests/org/roam/core/*.kt
  android/jvm-tests/org/roam/test/*.kt
)
echo "test-kotlin.sh: compiling ${#sources[@]} Kotlin files"
"$kotlin_home/bin/kotlinc" -jvm-target 17 -nowarn -cp "$cp_compile" -d "$work/tests.jar" "${sources[@]}" \
  || fail "kotlinc failed"

java -Djna.library.path="$work/bindings/lib" \
  -cp "$work/tests.jar:$jna:$klib/kotlin-stdlib.jar:$klib/kotlin-test.jar" \
  org.roam.test.RunnerKt org.roam.core.FfiTunnelTests org.roam.core.FfiImportTests org.roam.vpn.glue.GlueTests
