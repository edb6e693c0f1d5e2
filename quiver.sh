#!/usr/bin/env bash
# Quiver's one entry point on a Debian 12 machine (as root, or with sudo available):
#   ./quiver.sh run     install what is missing, build (Release), serve the MovieLens demo on
#                       127.0.0.1 (REST 7700, binary 7701) and print an example of each operator
#   ./quiver.sh test    install what is missing, check the formatting, build everything, run
#                       clang-tidy (.clang-tidy), then the whole test suite (the kernel tests
#                       cross-built for aarch64 under qemu, the fuzzers briefly, then
#                       everything on x86-64)
#   ./quiver.sh tidy    only build and run clang-tidy
#   ./quiver.sh deps    only install the Debian packages
#   ./quiver.sh build   only configure and build
# Environment: BUILD_DIR (default ./build), JOBS (default: number of cores), QUIVER_FUZZ_SECONDS
# (default 10: how long each fuzzer runs in `test`).
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
JOBS=${JOBS:-$(nproc)}

# Everything the build, the tests, the fuzzers and the benchmarks need, from Debian's archive.
# Installed with --no-install-recommends: a package only recommended by another one must be
# listed here itself (clang's fuzzer runtime is libclang-rt-14-dev). tools/fresh-machine-check.sh
# proves the list on a freshly bootstrapped Debian 12 root.
PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libsimde-dev libjemalloc-dev zlib1g-dev librocksdb-dev libsimdjson-dev libcli11-dev
  libboost-dev flatbuffers-compiler libflatbuffers-dev libspdlog-dev wrk clang libclang-rt-14-dev clang-format clang-tidy curl
  libgtest-dev libgmock-dev libbenchmark-dev
  libhnswlib-dev libfaiss-dev libopenblas-dev
  dataset-fashion-mnist python3 python3-numpy python3-flatbuffers python3-faiss python3-torch
  g++-aarch64-linux-gnu qemu-user
  nats-server libnats-dev etcd-server etcd-client
)

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "quiver.sh: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# The SIMD kernels and their test, cross-compiled for aarch64 (SIMDe lowers the AVX2 body to
# NEON) and run under qemu-user: every kernel checked against the scalar reference on ARM.
test_arm() {
  local dir="$BUILD_DIR-aarch64"
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/aarch64-linux-gnu.cmake" \
    -DQUIVER_KERNELS_ONLY=ON -DQUIVER_JEMALLOC=OFF >/dev/null
  cmake --build "$dir" -j "$JOBS"
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS"
}

# The libFuzzer targets (tests/fuzz), built with clang: each runs QUIVER_FUZZ_SECONDS (default
# 10) from its seed corpus; a crash or a sanitizer report fails the run.
test_fuzz() {
  local dir="$BUILD_DIR-fuzz" secs=${QUIVER_FUZZ_SECONDS:-10}
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIVER_FUZZ=ON \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  cmake --build "$dir" -j "$JOBS"
  local corpus="$dir/corpus"
  rm -rf "$corpus" && mkdir -p "$corpus/frame" "$corpus/json"
  "$dir/tests/fuzz/frame_seeds" "$corpus/frame" >/dev/null
  cp "$ROOT"/tests/fuzz/corpus/json/* "$corpus/json/"
  for f in frame json; do
    "$dir/tests/fuzz/${f}_fuzzer" -max_total_time="$secs" -max_len=65536 -print_final_stats=0 \
      "$corpus/$f" 2>"$dir/${f}_fuzzer.log" || { tail -40 "$dir/${f}_fuzzer.log"; return 1; }
    echo "fuzz: ${f}_fuzzer ran ${secs} s: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$dir/${f}_fuzzer.log" || grep -Eo '#[0-9]+' "$dir/${f}_fuzzer.log" | tail -1) runs, no crash"
  done
}

# clang-tidy with the checks of .clang-tidy over every source of the tree and the tree's own
# headers (not the generated or the system ones), on the build's compile_commands.json; any
# finding fails the run.
check_tidy() {
  local dirs="base|index|formats|storage|plugins|engine|cluster|net|client|tools|tests|bench|examples"
  # Not the ANN peers (bench/ann/*_peer.cc): thin wrappers whose third-party headers (FAISS's
  # omp.h) only GCC's include path has.
  run-clang-tidy -p "$BUILD_DIR" -j "$JOBS" -quiet -header-filter="^$ROOT/($dirs)/" \
    "^$ROOT/($dirs)/(?!.*_peer\.cc\$).*\.cc\$" >"$BUILD_DIR/tidy.log" 2>&1 || {
    sed 's/\x1b\[[0-9;]*m//g' "$BUILD_DIR/tidy.log" | grep -E "(warning|error):" | sort -u | head -40
    echo "quiver.sh: clang-tidy found the above (.clang-tidy; the whole log: $BUILD_DIR/tidy.log)"
    return 1
  }
  echo "tidy: $(grep -c '^clang-tidy' "$BUILD_DIR/tidy.log") files pass .clang-tidy"
}

# build [TARGET...]: configure (tests and benchmarks included) and build the targets, or all.
# Every C++ source is formatted as .clang-format says; a file that clang-format would change
# fails the run (fix with: clang-format -i FILE).
check_format() {
  local files
  files=$(find "$ROOT"/{base,index,formats,storage,plugins,engine,cluster,net,client,tools,tests,bench,examples} \
    -name '*.h' -o -name '*.cc' | sort)
  # shellcheck disable=SC2086
  clang-format --dry-run --Werror $files || { echo "quiver.sh: formatting differs (clang-format -i FILE)"; return 1; }
  echo "format: $(echo "$files" | wc -l) files as .clang-format says"
}

build() {
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DQUIVER_BUILD_TESTS=ON -DQUIVER_BUILD_BENCH=ON >/dev/null
  local targets=()
  [ $# -eq 0 ] || targets=(--target "$@")
  cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
}

case "${1:-}" in
  deps) deps ;;
  build) deps; build ;;
  test)
    deps
    check_format
    build
    check_tidy
    test_arm
    test_fuzz
    # The main suite last, so its summary is the last thing printed.
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
    ;;
  tidy)
    deps; build; check_tidy
    ;;
  run)
    # Only what the main job uses: the server and the CLI (and what they link).
    deps; build quiverd quiver
    "$BUILD_DIR/tools/quiver" version
    # The main job: MovieLens latest-small through the offline pipeline, bulk-built, served by
    # quiverd on 127.0.0.1 (REST 7700, binary 7701) with an example of every operator
    # (docs/getting-started.md). Ctrl-C stops it.
    "$ROOT/examples/movielens/demo.sh" "$BUILD_DIR"
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
