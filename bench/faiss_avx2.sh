#!/bin/bash
# Builds FAISS with its AVX2 kernels for ann_bench's FAISS peer. Debian ships only FAISS's generic
# build (no AVX2: its fast-scan and distance code run their portable paths), which is a floor, not
# the peer a user would meet. This builds the same version from Debian's own source package with
# -DFAISS_OPT_LEVEL=avx2, into the build directory. Neither Quiver nor its tests use it.
#
#   bench/faiss_avx2.sh [BUILD]            (default BUILD: build; run as root the first time)
#   cmake -S . -B BUILD -DQUIVER_FAISS_AVX2=BUILD/faiss-avx2 && ninja -C BUILD bench/ann_bench
#
# As root, adds a deb-src entry for Debian's archive (/etc/apt/sources.list.d/quiver-src.sources)
# if apt has none, then `apt-get source faiss=<the version libfaiss-dev was built from>`. Leaves
# BUILD/faiss-avx2/include (FAISS's headers) and BUILD/faiss-avx2/lib/libfaiss_avx2.a; a second
# run rebuilds only what changed. About 25 minutes on 2 cores.
set -euo pipefail

build=$(realpath -m "${1:-build}")
out="$build/faiss-avx2"
say() { printf 'faiss_avx2: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# The source package's version (a binary rebuild like 1.7.3-2+b1 comes from source 1.7.3-2).
version=$(dpkg-query -W -f='${source:Version}' libfaiss-dev 2>/dev/null) ||
  die "libfaiss-dev is not installed (./quiver.sh deps installs it)"
upstream=$(dpkg-query -W -f='${source:Upstream-Version}' libfaiss-dev)
src="$out/src/faiss-$upstream"

if [[ ! -f "$src/CMakeLists.txt" ]]; then
  if ! apt-get source --print-uris faiss >/dev/null 2>&1; then
    [[ $(id -u) == 0 ]] || die "apt has no deb-src entry for faiss; run this once as root to add one"
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    [[ -n "$codename" ]] || die "cannot tell the Debian release from /etc/os-release"
    say "adding a deb-src entry for Debian $codename"
    cat >/etc/apt/sources.list.d/quiver-src.sources <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get update -qq
  fi
  command -v dpkg-source >/dev/null || die "dpkg-source is missing (apt-get install dpkg-dev)"
  mkdir -p "$out/src"
  say "fetching Debian's source of faiss $version"
  (cd "$out/src" && apt-get source -qq "faiss=$version") ||
    die "apt-get source faiss=$version failed"
  [[ -f "$src/CMakeLists.txt" ]] || die "the source package did not unpack to $src"
fi

say "building faiss_avx2 from $src"
cmake -S "$src" -B "$out/obj" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFAISS_OPT_LEVEL=avx2 \
  -DFAISS_ENABLE_GPU=OFF -DFAISS_ENABLE_PYTHON=OFF -DFAISS_ENABLE_C_API=OFF -DBUILD_TESTING=OFF \
  -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON >"$out/configure.log" ||
  die "configure failed: see $out/configure.log"
ninja -C "$out/obj" -j "$(nproc)" faiss_avx2
mkdir -p "$out/lib"
cp "$out/obj/faiss/libfaiss_avx2.a" "$out/lib/"
ln -sfn "$src" "$out/include"
say "done: -DQUIVER_FAISS_AVX2=$out"
