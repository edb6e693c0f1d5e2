#!/usr/bin/env bash
# examples/python/quiver_rest.py (standard library only) against a live quiverd: every step of
# the walk-through must succeed.
# Usage: python_example_test.sh QUIVERD SOURCE_DIR
set -euo pipefail
QUIVERD=$1 SRC=$2
TMP=$(mktemp -d)
trap 'kill $QUIVERD_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
. "$SRC/tests/testing/quiverd.sh"
start_quiverd "$QUIVERD" "$TMP"
/usr/bin/python3 -I "$SRC/examples/python/quiver_rest.py" --port "$HTTP_PORT" > "$TMP/out.txt"
grep -q "^channels: \[(" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
grep -q "^exclude: \[(" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
grep -q "a wrong dimension is refused: INVALID_ARGUMENT" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
grep -q "^drop: {'ok': True}" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
echo "python example test: OK"
