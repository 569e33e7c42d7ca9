#!/usr/bin/env bash
# scripts/gen-bindings.sh [OUT_DIR] -- builds roam-ffi (debug, unstripped: library mode reads
# the metadata the proc-macros leave in it) and generates, under OUT_DIR (default
# target/bindings):
#   kotlin/org/roam/core/roam_ffi.kt              Kotlin (JVM and Android; JNA)
#   swift/RoamCore.swift                          Swift
#   swift/RoamCoreFFI.h, swift/RoamCoreFFI.modulemap   the C header and the clang module
#   lib/libroam_ffi.so                            the library the bindings were made from
# Generated code is never edited by hand and never committed.
#
# ROAM_FFI_FEATURES=test-fixture adds the test fixtures (scripts/test-kotlin.sh and
# scripts/check-swift.sh use it); app builds leave it unset. ROAM_FFI_PROFILE=release builds
# the release profile instead (debug info is kept there too, so the metadata is found).
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")/.."
out=${1:-target/bindings}
features=${ROAM_FFI_FEATURES:-}
profile=${ROAM_FFI_PROFILE:-debug}

feature_list="bindgen-cli${features:+,$features}"
profile_flag=()
[ "$profile" = release ] && profile_flag=(--release)

cargo build -p roam-ffi --lib --bin uniffi-bindgen --features "$feature_list" "${profile_flag[@]}"

lib="target/$profile/libroam_ffi.so"
[ -f "$lib" ] || lib="target/$profile/libroam_ffi.dylib"
[ -f "$lib" ] || { echo "gen-bindings.sh: no library built under target/$profile" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/kotlin" "$out/swift" "$out/lib"
bindgen="target/$profile/uniffi-bindgen"
"$bindgen" generate "$lib" --language kotlin --out-dir "$out/kotlin" --config uniffi.toml --no-format
"$bindgen" generate "$lib" --language swift --out-dir "$out/swift" --config uniffi.toml --no-format
cp "$lib" "$out/lib/"

for f in kotlin/org/roam/core/roam_ffi.kt swift/RoamCore.swift swift/RoamCoreFFI.h swift/RoamCoreFFI.modulemap; do
  [ -s "$out/$f" ] || { echo "gen-bindings.sh: $out/$f was not generated" >&2; exit 1; }
done
echo "gen-bindings.sh: bindings in $out (features: ${features:-none})"
