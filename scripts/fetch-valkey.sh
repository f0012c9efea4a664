#!/usr/bin/env bash
# Obtains the pristine Valkey 9.1.2 source tree that everything here is
# built and compared against, and prints its path.
#
# Source, in order of preference:
#   VALKEY_SRC=/path/to/tree       an unpacked tree the user already has (used as is)
#   VALKEY_TARBALL=/path/to.tar.gz the upstream tarball (SHA-256 checked)
#   otherwise                      Debian's source package valkey 9.1.2-1, fetched
#                                  with apt through a private sources list (sid,
#                                  then forky), so the system's apt setup is untouched.
#
# The tarball is cached in build/dl and unpacked once to build/valkey-src.
set -euo pipefail

VERSION=9.1.2
DEB_VERSION=9.1.2-1
SHA256=8e8557da7426a51b4e0fb514a65ef6241dc7c85cb408243af389070abf379cec

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
dl=$build/dl
tree=$build/valkey-src
tarball=$dl/valkey_$VERSION.orig.tar.gz

say() { echo "fetch-valkey: $*" >&2; }
die() { say "error: $*"; exit 1; }

if [ -n "${VALKEY_SRC:-}" ]; then
    [ -f "$VALKEY_SRC/src/io_threads.c" ] || die "VALKEY_SRC=$VALKEY_SRC has no src/io_threads.c"
    grep -q "\"$VERSION\"" "$VALKEY_SRC/src/version.h" ||
        die "VALKEY_SRC=$VALKEY_SRC is not Valkey $VERSION (see its src/version.h)"
    echo "$VALKEY_SRC"
    exit 0
fi

if [ -f "$tree/.complete" ]; then
    echo "$tree"
    exit 0
fi

mkdir -p "$dl"

if [ -n "${VALKEY_TARBALL:-}" ]; then
    cp "$VALKEY_TARBALL" "$tarball.part"
    mv "$tarball.part" "$tarball"
fi

fetch_with_apt() {
    local suite=$1
    local apt=$dl/apt-$suite
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/get"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
        >"$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
        -o APT::Sandbox::User=root -q)
    say "looking for valkey $DEB_VERSION in Debian $suite"
    apt-get "${opts[@]}" update >&2 || return 1
    (cd "$apt/get" && apt-get "${opts[@]}" source --download-only "valkey=$DEB_VERSION" >&2) || return 1
    mv "$apt/get/valkey_$VERSION.orig.tar.gz" "$tarball"
}

if [ ! -f "$tarball" ]; then
    command -v apt-get >/dev/null || die "apt-get not found; set VALKEY_TARBALL or VALKEY_SRC"
    fetch_with_apt sid || fetch_with_apt forky ||
        die "Debian's archive (sid, forky) no longer offers valkey $DEB_VERSION;
  download valkey $VERSION's tarball yourself and set VALKEY_TARBALL=/path/to/it
  (or VALKEY_SRC=/path/to/unpacked/tree)"
fi

actual=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ "$actual" != "$SHA256" ]; then
    rm -f "$tarball"
    die "SHA-256 mismatch for $tarball: got $actual, want $SHA256"
fi

rm -rf "$tree.part"
mkdir -p "$tree.part"
tar -xzf "$tarball" -C "$tree.part" --strip-components=1
touch "$tree.part/.complete"
rm -rf "$tree"
mv "$tree.part" "$tree"
say "Valkey $VERSION unpacked in $tree"
echo "$tree"
