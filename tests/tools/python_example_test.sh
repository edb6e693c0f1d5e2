#!/usr/bin/env bash
# examples/python/quiver_rest.py (standard library only) against a live quiverd: every step of
# the walk-through must succeed.
# Usage: python_example_test.sh QUIVERD SOURCE_DIR
set -euo pipefail
QUIVERD=$1 SRC=$2
TMP=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
"$QUIVERD" --data "$TMP/data" --http-port 0 --binary-port 0 > "$TMP/quiverd.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  grep -q "serving" "$TMP/quiverd.log" && break
  sleep 0.1
done
PORT=$(sed -n 's/.*REST http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$TMP/quiverd.log")
[ -n "$PORT" ] || { cat "$TMP/quiverd.log"; exit 1; }
/usr/bin/python3 -I "$SRC/examples/python/quiver_rest.py" --port "$PORT" > "$TMP/out.txt"
grep -q "^channels: \[(" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
grep -q "a wrong dimension is refused: INVALID_ARGUMENT" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
grep -q "^drop: {'ok': True}" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
echo "python example test: OK"
