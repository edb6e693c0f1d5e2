#!/usr/bin/env bash
# quiverd's log on a live server: with --log-format json every stderr line of the log is one
# JSON object (time, level, event, fields); requests over REST and the binary protocol get an
# access line; maintenance calls (create, snapshot, plugin run, drop, reloads) and the version
# served (after a reload too) get their own lines. With --log-format text and --access-log
# false: key=value lines and no access lines.
# Usage: log_test.sh QUIVER QUIVERD SOURCE_DIR
set -euo pipefail
QUIVER=$1 QUIVERD=$2 SRC=$3
TMP=$(mktemp -d)
trap 'kill $QUIVERD_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
. "$SRC/tests/testing/quiverd.sh"
call() { "$QUIVER" call --addr "127.0.0.1:$BIN_PORT" "$@"; }
stop() {
  kill -TERM "$QUIVERD_PID"
  wait "$QUIVERD_PID" 2>/dev/null || true
}

# A second version of the data root, bulk-built beside the first, to switch to.
/usr/bin/python3 -c 'import numpy as np, sys; np.save(sys.argv[1], np.eye(3, 2, dtype=np.float32))' "$TMP/v.npy"
"$QUIVER" build --out "$TMP/data/versions/v2" --name b --vectors "$TMP/v.npy" --index flat > /dev/null
start_quiverd "$QUIVERD" "$TMP" --log-format json --snapshot-interval-s 0
call POST /v1/collections '{"name":"m","dim":2,"index":{"type":"flat"}}' > /dev/null
call POST /v1/collections/m/items '{"items":[{"id":1,"vector":[1,0]},{"id":2,"vector":[0,1]},{"id":3,"vector":[1,1]}]}' > /dev/null
curl -s "http://127.0.0.1:$HTTP_PORT/v1/collections/m/search" -d '{"vector":[1,0],"k":2}' > /dev/null
call POST /v1/collections/m/snapshot > /dev/null
call POST /v1/collections/m/plugins/i2i_knn/run '{"config":{"k":2}}' > /dev/null
if call POST /v1/versions/reload '{"version":"nope"}' 2> /dev/null; then echo "reload of a missing version succeeded"; exit 1; fi
call DELETE /v1/collections/m > /dev/null
call POST /v1/versions/reload '{"version":"v2"}' > /dev/null
stop
python3 - "$TMP/quiverd.log" <<'PY'
import json, sys
events = {}
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue  # quiverd's stdout banner lines
    e = json.loads(line)  # every log line is one JSON object
    assert e["time"].endswith("Z") and e["level"] in ("debug", "info", "warning", "error"), e
    events.setdefault(e["event"], []).append(e)
def need(event, **fields):
    for e in events.get(event, []):
        if all(e.get(k) == v for k, v in fields.items()):
            return e
    sys.exit(f"no {event} line with {fields}; events: {sorted(events)}")
need("started", version="initial")
need("version_opened", version="initial")
need("create_collection", target="m", level="info")
need("snapshot", target="m")
need("snapshot_written", collection="m", items=3)
need("run_plugin", target="m", detail="i2i_knn")
need("reload", target="nope", level="warning", code="NOT_FOUND")
need("drop_collection", target="m")
need("version_switched", version="v2", previous="initial")  # what serves after a reload
need("reload", target="v2", level="info")
need("stopped")
rest = need("access", proto="rest", method="POST", path="/v1/collections/m/search", op="search", status=200)
assert rest["in"] > 0 and rest["out"] > 0 and rest["ms"] >= 0, rest
binary = need("access", proto="binary", op="upsert", code="OK")
assert binary["in"] > 0 and binary["out"] > 0, binary
need("access", proto="binary", op="reload", code="NOT_FOUND")
PY

rm -rf "$TMP/data"
start_quiverd "$QUIVERD" "$TMP" --access-log false --snapshot-interval-s 0
call GET /v1/collections > /dev/null
call POST /v1/collections '{"name":"t","dim":2}' > /dev/null
stop
if grep -q ' access ' "$TMP/quiverd.log"; then echo "access lines with --access-log false"; cat "$TMP/quiverd.log"; exit 1; fi
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z info create_collection target=t ms=' "$TMP/quiverd.log" || { echo "no text create_collection line"; cat "$TMP/quiverd.log"; exit 1; }
echo "log test: OK"
