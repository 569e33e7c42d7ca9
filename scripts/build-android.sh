#!/usr/bin/env bash
# scripts/build-android.sh [JNI_LIBS_DIR] -- builds libroam_ffi.so for the usual Android ABIs
# with cargo-ndk (release profile, which keeps debug info: strip at packaging time, after the
# bindings were generated from the host build). Output: JNI_LIBS_DIR/<abi>/libroam_ffi.so
# (default android/roam/build/generated/jniLibs), the layout the Gradle module reads.
#
# Needs a developer machine with the Android NDK (ANDROID_NDK_HOME) and
#   cargo install cargo-ndk
#   rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android
# (This machine kind has no NDK; CI runs `cargo check --target aarch64-linux-android` instead.)
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")/.."
out=${1:-android/roam/build/generated/jniLibs}
abis=${ROAM_ANDROID_ABIS:-"arm64-v8a armeabi-v7a x86_64 x86"}
platform=${ROAM_ANDROID_API:-26}

command -v cargo-ndk >/dev/null 2>&1 || { echo "build-android.sh: cargo install cargo-ndk" >&2; exit 1; }
[ -n "${ANDROID_NDK_HOME:-}" ] || { echo "build-android.sh: set ANDROID_NDK_HOME to the NDK" >&2; exit 1; }

targets=()
for abi in $abis; do targets+=(-t "$abi"); done
cargo ndk "${targets[@]}" --platform "$platform" -o "$out" build -p roam-ffi --lib --release --features ring
find "$out" -name 'libroam_ffi.so' -print
