#!/usr/bin/env bash
# Installs the client library from the build tree into a temporary prefix, builds a program
# outside the repository against it with find_package(Quiver), starts quiverd on free ports and
# runs the program against it; then stops quiverd with SIGTERM and checks a clean exit.
# Usage: consumer_test.sh BUILD_DIR SOURCE_DIR QUIVERD
set -euo pipefail
BUILD=$1 SRC=$2 QUIVERD=$3
TMP=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null
cmake -S "$SRC/tests/client/consumer" -B "$TMP/build" -G Ninja -DCMAKE_PREFIX_PATH="$TMP/prefix" >/dev/null
cmake --build "$TMP/build" >/dev/null
"$QUIVERD" --data "$TMP/data" --http-port 0 --binary-port 0 > "$TMP/quiverd.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  grep -q "serving" "$TMP/quiverd.log" && break
  sleep 0.1
done
PORT=$(sed -n 's/.*binary [0-9.]*:\([0-9]*\).*/\1/p' "$TMP/quiverd.log")
[ -n "$PORT" ] || { cat "$TMP/quiverd.log"; exit 1; }
"$TMP/build/consumer" "$PORT"
kill -TERM $PID
wait $PID
grep -q "quiverd: stopped" "$TMP/quiverd.log" || { cat "$TMP/quiverd.log"; exit 1; }
echo "consumer test: OK"
