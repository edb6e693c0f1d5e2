#!/usr/bin/env bash
# The mixed load run (issue 8): quiverd serving the MovieLens demo collection takes, for SECONDS,
# REST traffic from wrk (bench/load/mixed.lua: 90% search, 10% upsert) and binary traffic from
# load_bench (the C++ client library: 90% search, 10% upserts of 10 items) at the same time.
# Halfway it snapshots every collection; 30 s later it switches to another version of the data
# root (reload) while both keep sending. Durability: sync (the default); quiverd snapshots (and
# so compacts replaced items' tombstones) every 60 s. Records errors, latency percentiles and
# the server's RSS every 5 s.
# Usage: bench/load/run.sh BUILD_DIR REPORT.md [SECONDS=600]
set -euo pipefail
BUILD=$(cd "$1" && pwd)
REPORT=$2
SECONDS_TOTAL=${3:-600}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d /tmp/quiver_load.XXXXXX)
trap 'kill $PID $SAMPLER 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
QUIVER=$BUILD/tools/quiver

# Data: the demo's offline files, built twice (two versions to swap between).
DEMO=$BUILD/movielens
if [ ! -f "$DEMO/meta.json" ]; then /usr/bin/python3 "$SRC/examples/movielens/prepare.py" --out "$DEMO" >/dev/null; fi
for v in v1 v2; do
  "$QUIVER" build --out "$WORK/root/versions/$v" --name movies --vectors "$DEMO/items.npy" \
    --attributes "$DEMO/items.jsonl" --metric ip --index hnsw --kmeans-clusters 16 --topics 4 \
    --topic-threshold 0.05 --users "$DEMO/users.json" --plugin 'i2i_knn:{"k":50}' >/dev/null
done

"$BUILD/tools/quiverd" --data "$WORK/root" --http-port 0 --binary-port 0 --snapshot-interval-s 60 \
  > "$WORK/quiverd.log" 2>&1 &
PID=$!
for _ in $(seq 200); do grep -q serving "$WORK/quiverd.log" && break; sleep 0.05; done
HTTP=$(sed -n 's/.*REST http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$WORK/quiverd.log")
BIN=$(sed -n 's/.*binary [0-9.]*:\([0-9]*\).*/\1/p' "$WORK/quiverd.log")
call() { "$QUIVER" call --addr "127.0.0.1:$BIN" --timeout-ms 120000 "$@"; }
call POST /v1/versions/reload '{"version":"v1"}' >/dev/null

rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
( start=$(date +%s); while kill -0 $PID 2>/dev/null; do echo "$(( $(date +%s) - start )),$(rss)"; sleep 5; done ) \
  > "$WORK/rss.csv" 2>/dev/null &
SAMPLER=$!

wrk -t1 -c4 -d"${SECONDS_TOTAL}s" --latency -s "$HERE/mixed.lua" "http://127.0.0.1:$HTTP" > "$WORK/wrk.txt" 2>&1 &
WRK=$!
"$BUILD/bench/load_bench" --port "$BIN" --seconds "$SECONDS_TOTAL" --threads 1 > "$WORK/load_bench.txt" 2>&1 &
LOAD=$!

half=$(( SECONDS_TOTAL / 2 ))
sleep "$half"
t0=$(date +%s.%N); snap=$(call POST /v1/snapshot 2>&1); t1=$(date +%s.%N)
SNAPSHOT="snapshot at ${half} s: $snap in $(awk "BEGIN {printf \"%.2f\", $t1 - $t0}") s"
sleep 30
t0=$(date +%s.%N); swap=$(call POST /v1/versions/reload '{"version":"v2"}' 2>&1); t1=$(date +%s.%N)
SWAP="reload to v2 at $(( half + 30 )) s: $swap in $(awk "BEGIN {printf \"%.2f\", $t1 - $t0}") s; serving: $(call GET /v1/versions)"
load_status=0
wait $WRK
wait $LOAD || load_status=$?
AFTER=$(call GET /v1/collections/movies)

{
  echo "# Mixed load: ${SECONDS_TOTAL} s of REST and binary reads and writes, a snapshot and a version swap"
  echo
  echo "Command: \`bench/load/run.sh build $REPORT $SECONDS_TOTAL\`  "
  echo "quiverd (durability sync, a snapshot every 60 s, 2 cores shared with both load generators) serving the MovieLens"
  echo "demo collection (8,239 items, HNSW, 16 clusters, 4 topics, users and i2i lists);"
  echo "wrk: 1 thread, 4 connections, bench/load/mixed.lua (90% search k 50, 10% upsert of 1 item);"
  echo "load_bench: 1 thread on the client library (90% search k 50, 10% upsert of 10 items)."
  echo
  echo "- $SNAPSHOT"
  echo "- $SWAP"
  echo
  echo "## wrk (REST)"
  echo
  echo '```'
  cat "$WORK/wrk.txt"
  echo '```'
  echo
  echo "## load_bench (binary protocol, client library; exit status $load_status)"
  echo
  echo '```'
  cat "$WORK/load_bench.txt"
  echo '```'
  echo
  echo "## quiverd resident memory (KiB), every 5 s"
  echo
  echo "The collection at the end (v2, which took writes from the swap on): \`$AFTER\`"
  echo
  echo "Resident memory includes RocksDB's block cache (up to 256 MiB) and memtables filling"
  echo "up, the upserted items' index entries, and, around the swap, both versions."
  echo
  awk -F, 'NR==1 {first=$2} {last=$2; if ($2>max) max=$2} NR==2 {second=$2}
           END {printf "start %d, after 5 s %d, max %d, end %d: growth from 5 s to the end %+d KiB (%+.1f%%)\n",
                first, second, max, last, last-second, 100*(last-second)/second}' "$WORK/rss.csv"
  echo
  echo '```'
  awk -F, 'NR % 12 == 1' "$WORK/rss.csv"
  echo '```'
} > "$REPORT"
echo "load run written to $REPORT"
