#!/usr/bin/env bash
# Installs the system tools this project builds and tests with, from Debian's
# packages. Safe to run repeatedly; does nothing when all are present.
#   libclang   bindgen reads Valkey's headers with it
#   gtest/gmock, pkg-config   Valkey's own unit tests (src/unit)
#   tcl        Valkey's TCL test suite
set -euo pipefail

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
