#!/usr/bin/env bash
# Installs the client library from the build tree into a temporary prefix, builds a program
# outside the repository against it with find_package(Quiver), starts quiverd on free ports and
# runs the program against it; then stops quiverd with SIGTERM and checks a clean exit.
# Usage: consumer_test.sh BUILD_DIR SOURCE_DIR QUIVERD
set -euo pipefail
BUILD=$1 SRC=$2 QUIVERD=$3
TMP=$(mktemp -d)
trap 'kill $QUIVERD_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
. "$SRC/tests/testing/quiverd.sh"
cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null
cmake -S "$SRC/tests/client/consumer" -B "$TMP/build" -G Ninja -DCMAKE_PREFIX_PATH="$TMP/prefix" >/dev/null
cmake --build "$TMP/build" >/dev/null
start_quiverd "$QUIVERD" "$TMP"
"$TMP/build/consumer" "$BIN_PORT"
kill -TERM $QUIVERD_PID
wait $QUIVERD_PID
grep -q "quiverd: stopped" "$TMP/quiverd.log" || { cat "$TMP/quiverd.log"; exit 1; }
echo "consumer test: OK"
