#!/usr/bin/env bash
# Installs the system tools this project builds and tests with, from Debian's
# packages. Safe to run repeatedly; does nothing when all are present.
#   libclang   bindgen reads Valkey's headers with it
#   gtest/gmock, pkg-config   Valkey's own unit tests (src/unit)
#   tcl        Valkey's TCL test suite
# With IOCORE_SETUP_NIGHTLY=1 it also makes sure rustup has a nightly
# toolchain with Miri and the standard library's source, which `make miri`
# and the sanitizer builds of the crate (-Zsanitizer) need.
set -euo pipefail

if [ -n "${IOCORE_SETUP_NIGHTLY:-}" ] && ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "setup: installing rustup's nightly toolchain with miri and rust-src" >&2
    rustup toolchain install nightly --profile minimal --component miri,rust-src >&2
fi

packages=(build-essential pkg-config libclang-dev clang libgtest-dev libgmock-dev tcl procps)
[ -n "${IOCORE_SETUP_EXTRA:-}" ] && read -r -a extra <<<"$IOCORE_SETUP_EXTRA" && packages+=("${extra[@]}")

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
