#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian machine:
# the real consumers of the image (skopeo, umoci, runc, podman, oci-image-tool),
# the real registry (docker-registry), qemu-user for foreign-arch binaries,
# zig (the one cross C toolchain, for every target), and the rustup targets.
# Safe to run again: it only adds what is missing. No Debian cross compiler
# and no foreign dpkg architecture: zig brings musl and the kernel headers
# for every arch; gcc is only the host's compiler for build scripts.
set -euo pipefail

APT_PACKAGES=(
  skopeo umoci runc podman docker-registry oci-image-tool
  qemu-user-static binfmt-support
  gcc libc6-dev perl
  gnupg openssl apache2-utils xz-utils zstd jq curl ca-certificates
  iproute2 python3 python3-venv python3-yaml file binutils dpkg-dev time libcap2-bin attr
  tmux groff-base mmdebstrap
  autoconf automake libtool autotools-dev bison flex pkgconf cmake make patch
)
RUST_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
# The further platforms' standard libraries, where rustup's mirror serves
# them; where it does not, the builder compiles std from rust-src.
EXTRA_RUST_TARGETS=(
  armv7-unknown-linux-musleabihf riscv64gc-unknown-linux-musl
  powerpc64le-unknown-linux-musl s390x-unknown-linux-musl
)

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

# Tests that use `apt-get download` need the host's package lists.
if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] && apt-get update -qq || sudo apt-get update -qq
fi

# The SBOM test validates its output with the reference validators: SPDX's
# pyspdxtools and CycloneDX's own JSON-schema validator, in a venv of their
# own at pinned versions. A stamp file naming the pins makes a rerun instant.
SBOM_VENV=/opt/netshoot-sbom-venv
SBOM_PINS=(spdx-tools==0.8.5 "cyclonedx-python-lib[json-validation]==11.12.0")
if [ "$(cat "$SBOM_VENV/.pins" 2>/dev/null)" != "${SBOM_PINS[*]}" ] || [ ! -x "$SBOM_VENV/bin/pyspdxtools" ]; then
  sbom_py=python3
  [ -x /usr/bin/python3 ] && sbom_py=/usr/bin/python3
  echo "install-deps: venv $SBOM_VENV (${SBOM_PINS[*]})" >&2
  [ -x "$SBOM_VENV/bin/python" ] || "$sbom_py" -m venv "$SBOM_VENV"
  "$SBOM_VENV/bin/python" -m pip install -q --disable-pip-version-check "${SBOM_PINS[@]}"
  printf '%s' "${SBOM_PINS[*]}" >"$SBOM_VENV/.pins"
fi

# Every C compile and every cargo link for a target goes through zig
# (`zig cc -target ARCH-linux-musl`): one hermetic cross compiler with musl
# and kernel headers for every arch.
# It comes from PyPI's ziglang package, pinned, in a venv of its own.
ZIG_VENV=/opt/netshoot-zig
ZIG_PIN=ziglang==0.17.1
if [ "$(cat "$ZIG_VENV/.pins" 2>/dev/null)" != "$ZIG_PIN" ] || ! [ -x /usr/local/bin/zig ]; then
  zig_py=python3
  [ -x /usr/bin/python3 ] && zig_py=/usr/bin/python3
  echo "install-deps: venv $ZIG_VENV ($ZIG_PIN)" >&2
  [ -x "$ZIG_VENV/bin/python" ] || "$zig_py" -m venv "$ZIG_VENV"
  "$ZIG_VENV/bin/python" -m pip install -q --disable-pip-version-check "$ZIG_PIN"
  zig_bin=$("$ZIG_VENV/bin/python" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
  ln -sf "$zig_bin" /usr/local/bin/zig
  printf '%s' "$ZIG_PIN" >"$ZIG_VENV/.pins"
fi

if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup target list --installed)
  for t in "${RUST_TARGETS[@]}"; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
  done
  need_src=""
  for t in "${EXTRA_RUST_TARGETS[@]}"; do
    grep -qx "$t" <<<"$installed" || RUST_BACKTRACE=0 rustup target add "$t" >/dev/null 2>&1 || need_src=1
  done
  if [ -n "$need_src" ] && ! rustup component list --installed | grep -q '^rust-src'; then
    echo "install-deps: rustup component add rust-src (std for further targets is compiled from it)" >&2
    rustup component add rust-src
  fi
fi
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  : # cargo test is used when nextest is absent
fi

# arm64 binaries of the image run in a chroot through binfmt_misc and
# qemu-user-static (flag F: the interpreter is opened at registration, so
# it works inside the image root).
if [ -d /proc/sys/fs/binfmt_misc ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  if command -v update-binfmts >/dev/null 2>&1; then
    for q in qemu-aarch64 qemu-arm qemu-riscv64 qemu-ppc64le qemu-s390x; do
      [ -e "/proc/sys/fs/binfmt_misc/$q" ] || update-binfmts --enable "$q" >/dev/null 2>&1 || true
    done
  fi
fi
