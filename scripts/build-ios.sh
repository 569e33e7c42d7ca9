#!/usr/bin/env bash
# scripts/build-ios.sh [OUT_DIR] -- on a Mac with Xcode: builds roam-ffi as a static library
# for iOS devices, the simulator and macOS (arm64 and x86_64 merged with lipo; the macOS
# slice lets `swift test` run the package's tests on the Mac), generates the Swift
# bindings, and packs RoamCoreFFI.xcframework plus Sources for the Swift package under ios/.
# The oslog feature is on here (unified logging; it needs Xcode's C toolchain).
#
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin
#   scripts/build-ios.sh            # -> ios/RoamCoreFFI.xcframework, ios/Sources/RoamCore/RoamCore.swift
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")/.."
out=${1:-ios}
[ "$(uname -s)" = Darwin ] || { echo "build-ios.sh: needs macOS with Xcode" >&2; exit 1; }
command -v xcodebuild >/dev/null 2>&1 || { echo "build-ios.sh: needs Xcode (xcodebuild)" >&2; exit 1; }

profile_dir=release
for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin; do
  cargo build -p roam-ffi --lib --release --features oslog,ring --target "$t"
done

# Bindings from the macOS host build (library mode reads the unstripped library's metadata).
cargo build -p roam-ffi --lib --bin uniffi-bindgen --features bindgen-cli
gen=$(mktemp -d)
target/debug/uniffi-bindgen generate target/debug/libroam_ffi.dylib --language swift \
  --out-dir "$gen" --config uniffi.toml --no-format

headers=$(mktemp -d)
cp "$gen/RoamCoreFFI.h" "$headers/"
cp "$gen/RoamCoreFFI.modulemap" "$headers/module.modulemap"

sim=$(mktemp -d)
lipo -create -output "$sim/libroam_ffi.a" \
  "target/aarch64-apple-ios-sim/$profile_dir/libroam_ffi.a" \
  "target/x86_64-apple-ios/$profile_dir/libroam_ffi.a"

mac=$(mktemp -d)
lipo -create -output "$mac/libroam_ffi.a" \
  "target/aarch64-apple-darwin/$profile_dir/libroam_ffi.a" \
  "target/x86_64-apple-darwin/$profile_dir/libroam_ffi.a"

rm -rf "$out/RoamCoreFFI.xcframework"
xcodebuild -create-xcframework \
  -library "target/aarch64-apple-ios/$profile_dir/libroam_ffi.a" -headers "$headers" \
  -library "$sim/libroam_ffi.a" -headers "$headers" \
  -library "$mac/libroam_ffi.a" -headers "$headers" \
  -output "$out/RoamCoreFFI.xcframework"

mkdir -p "$out/Sources/RoamCore"
cp "$gen/RoamCore.swift" "$out/Sources/RoamCore/RoamCore.swift"
echo "build-ios.sh: $out/RoamCoreFFI.xcframework and $out/Sources/RoamCore/RoamCore.swift"
