#!/usr/bin/env bash
# scripts/install-deps.sh -- installs what the tests need on Debian 12, as root, and only what
# is missing: strongSwan with userspace ESP and the namespace tools (lab tests), JNA, Java and
# the Kotlin compiler (Kotlin binding tests), clang and tree-sitter-swift (Swift checks), and
# the mobile Rust targets (cargo check of roam-ffi). Run by .ci/run and by scripts/test.sh.
#   scripts/install-deps.sh          install what is missing (root)
#   scripts/install-deps.sh --check  only list what is missing (exit 1 if anything is)
set -euo pipefail

apt_packages=(
  strongswan-swanctl charon-systemd strongswan-charon strongswan-pki
  libcharon-extra-plugins libcharon-extauth-plugins
  # openssl, gcm: only a Recommends of the others, so named here
  libstrongswan-extra-plugins libstrongswan-standard-plugins
  iproute2 nftables iputils-ping iperf3 tcpdump conntrack openssl python3 procps ca-certificates
  libjna-java libjna-jni clang openjdk-17-jre-headless
)
kotlin_version=2.4.20
targets=(aarch64-linux-android aarch64-apple-ios)

missing_apt=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing_apt+=("$p")
done
# Node.js may come from the machine image rather than Debian: only npm on PATH matters.
command -v npm >/dev/null 2>&1 || missing_apt+=(nodejs npm)
kotlinc_ok() { command -v npm >/dev/null 2>&1 && [ -x "$(npm root -g 2>/dev/null)/kotlin-compiler/bin/kotlinc" ]; }
treesitter_ok() { python3 -c 'import tree_sitter, tree_sitter_swift' >/dev/null 2>&1; }
missing_targets=()
if command -v rustup >/dev/null 2>&1; then
  for t in "${targets[@]}"; do rustup target list --installed | grep -qx "$t" || missing_targets+=("$t"); done
fi

if [ "${1:-}" = --check ]; then
  status=0
  [ ${#missing_apt[@]} -eq 0 ] || { echo "missing Debian packages: ${missing_apt[*]}"; status=1; }
  kotlinc_ok || { echo "missing: npm kotlin-compiler@$kotlin_version"; status=1; }
  treesitter_ok || { echo "missing: PyPI tree-sitter tree-sitter-swift"; status=1; }
  [ ${#missing_targets[@]} -eq 0 ] || { echo "missing Rust targets: ${missing_targets[*]}"; status=1; }
  exit $status
fi

[ "$(id -u)" -eq 0 ] || { echo "install-deps.sh: run as root (apt-get)" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 "$@"; }
if [ ${#missing_apt[@]} -gt 0 ]; then
  apt_get update -q
  apt_get install -y -q --no-install-recommends "${missing_apt[@]}"
fi
kotlinc_ok || npm install -g --no-fund --no-audit "kotlin-compiler@$kotlin_version"
treesitter_ok || python3 -m pip install --quiet --disable-pip-version-check tree-sitter tree-sitter-swift
[ ${#missing_targets[@]} -eq 0 ] || rustup target add "${missing_targets[@]}"
echo "install-deps.sh: everything the tests need is installed"
