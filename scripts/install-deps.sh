#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian machine:
# the real consumers of the image (skopeo, umoci, runc, podman, oci-image-tool),
# the real registry (docker-registry), qemu-user for foreign-arch binaries, the
# cross C toolchains, and the rustup targets. Safe to run again: it only adds
# what is missing.
set -euo pipefail

APT_PACKAGES=(
  skopeo umoci runc podman docker-registry oci-image-tool
  qemu-user-static binfmt-support
  musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  gnupg openssl apache2-utils xz-utils zstd jq curl ca-certificates
  iproute2 python3 file binutils dpkg-dev time libcap2-bin attr
)
RUST_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "install-deps: apt-get install ${missing[*]}" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup target list --installed)
  for t in "${RUST_TARGETS[@]}"; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
  done
fi
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  : # cargo test is used when nextest is absent
fi
