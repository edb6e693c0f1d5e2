#!/usr/bin/env bash
# examples/python/walkthrough.py (on the Python client, build/python) against a live quiverd:
# every step of the walk-through must succeed.
# Usage: python_example_test.sh QUIVERD SOURCE_DIR BUILD_DIR
set -euo pipefail
QUIVERD=$1 SRC=$2 BUILD=$3
TMP=$(mktemp -d)
trap 'kill $QUIVERD_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
. "$SRC/tests/testing/quiverd.sh"
start_quiverd "$QUIVERD" "$TMP" --access-log false
PYTHONPATH="$BUILD/python" /usr/bin/python3 "$SRC/examples/python/walkthrough.py" --port "$BIN_PORT" > "$TMP/out.txt"
grep -q "^channels: \[(" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
grep -q "^exclude: \[(" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
grep -q "^count: 500 in category 3: 100" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
grep -q "a wrong dimension is refused: INVALID_ARGUMENT" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
grep -q "^dropped: True" "$TMP/out.txt" || { cat "$TMP/out.txt"; exit 1; }
echo "python example test: OK"
