#!/usr/bin/env bash
# A full disk under a real quiverd (issue 16, case 3). The data root sits on a 48 MiB tmpfs
# mounted in a private mount namespace (unshare -m as root, unshare -rm otherwise), filled and
# emptied with a filler file:
# - a full disk refuses writes (RESOURCE_EXHAUSTED, nothing written), /healthz says
#   "degraded: read-only" and /readyz answers 503 "refusing writes", searches go on, a snapshot is refused and leaves no *.tmp behind;
# - once the filler is gone, writes are accepted again without a restart, /healthz says serving;
# - a start on a full disk serves reads (every acknowledged item) and refuses writes; a start
#   with the space back accepts them.
# Usage: disk_full_test.sh QUIVER QUIVERD SOURCE_DIR
set -euo pipefail
if [ "${QUIVER_IN_NAMESPACE:-}" != 1 ]; then
  export QUIVER_IN_NAMESPACE=1
  if unshare -m true 2>/dev/null; then exec unshare -m "$0" "$@"; fi
  if unshare -rm true 2>/dev/null; then exec unshare -rm "$0" "$@"; fi
  echo "disk full test: SKIPPED: no private mount namespace (unshare -m and -rm refused)"
  exit 77
fi
QUIVER=$1 QUIVERD=$2 SRC=$3
TMP=$(mktemp -d)
DISK=$TMP/disk
mkdir -p "$DISK"
mount -t tmpfs -o size=48m tmpfs "$DISK"
trap 'rc=$?; [ $rc -eq 0 ] || cat "$DISK/quiverd.log" 2>/dev/null; kill -9 $QUIVERD_PID 2>/dev/null || true; wait 2>/dev/null || true; umount "$DISK" 2>/dev/null || true; rm -rf "$TMP"' EXIT
. "$SRC/tests/testing/quiverd.sh"
FLAGS=(--min-free-disk-mb 8 --snapshot-interval-s 0)
call() { "$QUIVER" call --addr "127.0.0.1:$BIN_PORT" --timeout-ms 20000 "$@"; }
expect() {  # expect PATTERN OUTPUT
  echo "$2" | grep -q -- "$1" || { echo "expected /$1/ in: $2"; exit 1; }
}
upsert() {  # upsert FIRST_ID COUNT
  local items="" i
  for ((i = $1; i < $1 + $2; i++)); do items+="${items:+,}{\"id\":$i,\"vector\":[$i,1,0,0]}"; done
  call POST /v1/collections/m/items "{\"items\":[$items]}"
}
probe() {  # probe PATH: "STATUS BODY" of an HTTP GET (no API key), as /readyz answers
  python3 -c 'import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=20)
    print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())' "$HTTP_PORT" "$1"
}
fill() { dd if=/dev/zero of="$DISK/filler" bs=1M count=64 2>/dev/null || true; }
# Wait for the first write accepted again (the client may have been backing off).
until_accepted() {
  local tries=0
  until out=$(upsert "$1" "$2" 2>&1); do
    tries=$((tries + 1))
    [ $tries -lt 300 ] || { echo "writes still refused with space back: $out"; exit 1; }
    sleep 0.1
  done
}

start_quiverd "$QUIVERD" "$DISK" "${FLAGS[@]}"
expect '"name":"m"' "$(call POST /v1/collections '{"name":"m","dim":4,"index":{"type":"hnsw"}}')"
expect '"changed":100' "$(upsert 1 100)"
expect '"status":"serving"' "$(call GET /healthz)"

fill
if out=$(upsert 1000 5 2>&1); then echo "a write on a full disk succeeded: $out"; exit 1; fi
expect 'RESOURCE_EXHAUSTED' "$out"
expect 'reserve' "$out"
expect 'degraded: read-only' "$(call GET /healthz)"
expect '^503 {"ready":false,"reason":"refusing writes"}' "$(probe /readyz)"
expect '^200 {"live":true}' "$(probe /livez)"
expect '"hits":\[{"id":' "$(call POST /v1/collections/m/search '{"vector":[5,1,0,0],"k":3}')"
expect '"items":\[null\]' "$(call GET /v1/collections/m/items/1000)"  # the refused write
if out=$(call POST /v1/collections/m/snapshot 2>&1); then echo "a snapshot on a full disk succeeded"; exit 1; fi
expect 'RESOURCE_EXHAUSTED' "$out"
if find "$DISK/data" -name '*.tmp' | grep -q .; then echo "a refused snapshot left *.tmp behind"; exit 1; fi

rm "$DISK/filler"
until_accepted 200 10
expect '"status":"serving"' "$(call GET /healthz)"
expect '^200 {"ready":true}' "$(probe /readyz)"
expect '"id":205' "$(call GET /v1/collections/m/items/205)"
call POST /v1/collections/m/snapshot > /dev/null

# A start on a full disk: reads of everything acknowledged, writes refused.
fill
kill -9 $QUIVERD_PID
wait $QUIVERD_PID 2>/dev/null || true
start_quiverd "$QUIVERD" "$DISK" "${FLAGS[@]}"
expect 'opened read-only' "$(call GET /healthz)"
expect '"items":110' "$(call GET /v1/collections/m)"
for id in 1 100 200 209; do expect "\"id\":$id" "$(call GET /v1/collections/m/items/$id)"; done
expect '"hits":\[{"id":' "$(call POST /v1/collections/m/search '{"vector":[5,1,0,0],"k":3}')"
if out=$(upsert 300 1 2>&1); then echo "a write after a start on a full disk succeeded"; exit 1; fi
expect 'RESOURCE_EXHAUSTED' "$out"

rm "$DISK/filler"
kill -TERM $QUIVERD_PID
wait $QUIVERD_PID 2>/dev/null || true
start_quiverd "$QUIVERD" "$DISK" "${FLAGS[@]}"
expect '"status":"serving"' "$(call GET /healthz)"
expect '"changed":1' "$(upsert 300 1)"
expect '"items":111' "$(call GET /v1/collections/m)"
kill -TERM $QUIVERD_PID
wait $QUIVERD_PID
echo "disk full test: OK"
