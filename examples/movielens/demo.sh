#!/usr/bin/env bash
# The main job (./quiver.sh run): MovieLens latest-small, from ratings to a served collection.
#   1. prepare.py: temporal split, implicit ALS, topics, multi-interest and MVKE user vectors;
#   2. quiver build: bulk-build the "movies" collection (HNSW, 16 k-means clusters, 4 topics)
#      into a new version directory of a data root;
#   3. quiverd on 127.0.0.1 (REST 7700, binary 7701), switched to that version (reload), the
#      users with their histories uploaded, and the plugins run (i2i_knn, itemcf, u2u_knn lists);
#   4. one ready-to-paste curl and `quiver call` example per operator, each run once;
#   5. keeps serving until Ctrl-C (SIGINT/SIGTERM: quiverd finishes requests and snapshots).
# Usage: demo.sh BUILD_DIR [--check | --eval REPORT.md [--baselines] [--models]]
#   --check: stop after step 4; exit 1 if any example fails
#   --eval:  after step 4, run examples/movielens/evaluate.py (every user, every strategy) into
#            REPORT.md; --baselines adds EASE and ALS tuned on a validation split (minutes);
#            --models trains the divide-and-conquer model and ComiRec-SA (train.py,
#            python3-torch, about 3 minutes) and serves them as the collections "movies_dc" and
#            "movies_mi" beside "movies"
# Environment: QUIVER_HTTP_PORT, QUIVER_BINARY_PORT (0: any free port), QUIVER_DEMO_DIR
# (default BUILD_DIR/movielens).
set -euo pipefail
BUILD=$(cd "$1" && pwd)
CHECK=${2:-}
EVAL_OUT=${3:-}
EVAL_FLAGS=()
MODELS=0
for opt in "${@:4}"; do
  case $opt in
    --baselines) EVAL_FLAGS+=(--baselines) ;;
    --models) MODELS=1 ;;
    *) echo "demo.sh: unknown option $opt"; exit 2 ;;
  esac
done
[ "$CHECK" != "--eval" ] || [ -n "$EVAL_OUT" ] || { echo "demo.sh: --eval needs a report path"; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
OUT=${QUIVER_DEMO_DIR:-$BUILD/movielens}
QUIVER=$BUILD/tools/quiver
QUIVERD=$BUILD/tools/quiverd
DATA=$SRC/data/ml-latest-small

mkdir -p "$OUT"
if [ ! -f "$OUT/meta.json" ] || [ "$HERE/prepare.py" -nt "$OUT/meta.json" ] || [ "$DATA/ratings.csv" -nt "$OUT/meta.json" ]; then
  echo "== 1. offline pipeline: examples/movielens/prepare.py"
  /usr/bin/python3 "$HERE/prepare.py" --data "$DATA" --out "$OUT"
else
  echo "== 1. offline pipeline: up to date in $OUT"
fi
if [ "$MODELS" = 1 ]; then
  for model in dc comirec; do
    dir=$OUT/$model
    if [ ! -f "$dir/model.json" ] || [ "$HERE/train.py" -nt "$dir/model.json" ] || [ "$OUT/meta.json" -nt "$dir/model.json" ]; then
      echo "== 1b. trained model: examples/movielens/train.py --model $model"
      /usr/bin/python3 "$HERE/train.py" --data "$OUT" --out "$dir" --model "$model"
    else
      echo "== 1b. trained model: up to date in $dir"
    fi
  done
fi

echo "== 2. bulk build: quiver build"
rm -rf "$OUT/data"
"$QUIVER" build --out "$OUT/data/versions/movielens" --name movies \
  --vectors "$OUT/items.npy" --attributes "$OUT/items.jsonl" --metric ip --index hnsw \
  --kmeans-clusters 16 --topics 4 --topic-threshold 0.05 --topic-concat --max-history 200
if [ "$MODELS" = 1 ]; then
  for model in dc comirec; do
    name=movies_dc
    [ "$model" = dc ] || name=movies_mi
    "$QUIVER" build --out "$OUT/data/versions/movielens" --name "$name" \
      --vectors "$OUT/$model/items.npy" --attributes "$OUT/$model/items.jsonl" --metric ip --index hnsw \
      --clusters 16 --max-history 200
  done
fi

echo "== 3. quiverd on 127.0.0.1"
LOG=$OUT/quiverd.log
"$QUIVERD" --data "$OUT/data" --http-port "${QUIVER_HTTP_PORT:-7700}" --binary-port "${QUIVER_BINARY_PORT:-7701}" \
  --durability nosync > "$LOG" 2>&1 &
PID=$!
stop() { kill -TERM "$PID" 2>/dev/null && wait "$PID" || true; }
trap stop EXIT
until grep -q "serving" "$LOG"; do  # however long start-up takes on a busy machine
  kill -0 "$PID" 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.05
done
HTTP=$(sed -n 's/.*REST http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$LOG")
BIN=$(sed -n 's/.*binary [0-9.]*:\([0-9]*\).*/\1/p' "$LOG")
[ -n "$HTTP" ] && [ -n "$BIN" ] || { cat "$LOG"; exit 1; }
# The set-up calls (reload, users upload) may wait on a busy machine: a generous deadline.
call() { "$QUIVER" call --addr "127.0.0.1:$BIN" --timeout-ms 120000 "$@"; }
call POST /v1/versions/reload '{"version":"movielens"}' >/dev/null
call POST /v1/collections/movies/users @"$OUT/users.json" >/dev/null
if [ "$MODELS" = 1 ]; then
  call POST /v1/collections/movies_dc/users @"$OUT/dc/users.json" >/dev/null
  call POST /v1/collections/movies_mi/users @"$OUT/comirec/users.json" >/dev/null
fi
echo "index-time plugins (docs/plugins.md): neighbor lists for the u2i2i and u2u2i channels, learned intent"
for run in 'i2i_knn {"config":{"k":50}}' 'itemcf {"config":{"k":50}}' 'u2u_knn {"config":{"k":30}}' 'intent {"config":{}}'; do
  plugin=${run%% *}
  printf '  %-8s ' "$plugin"
  "$QUIVER" call --addr "127.0.0.1:$BIN" --timeout-ms 600000 POST "/v1/collections/movies/plugins/$plugin/run" "${run#* }"
done
echo "serving: REST http://127.0.0.1:$HTTP, binary 127.0.0.1:$BIN; collection 'movies':"
call GET /v1/collections/movies

echo "== 4. one example per operator (bodies in $OUT/queries; docs/queries.md has the semantics)"
failed=0
for name in u2i multi_interest mvke quota filter diversity fresh channels; do
  body=$OUT/queries/$name.json
  echo
  echo "--- $name"
  echo "curl -s http://127.0.0.1:$HTTP/v1/collections/movies/search -d @$body"
  echo "$QUIVER call --addr 127.0.0.1:$BIN POST /v1/collections/movies/search @$body"
  call POST /v1/collections/movies/search @"$body" | /usr/bin/python3 "$HERE/show.py" || { echo "  FAILED: $name"; failed=1; }
done
echo
echo "--- a user, with the history uploaded above"
echo "curl -s http://127.0.0.1:$HTTP/v1/collections/movies/users/1"
if [ "$CHECK" = "--eval" ]; then
  echo
  echo "== 5. evaluation: examples/movielens/evaluate.py"
  [ "$MODELS" = 0 ] || EVAL_FLAGS+=(--model "$OUT/dc:movies_dc" --model "$OUT/comirec:movies_mi")
  /usr/bin/python3 "$HERE/evaluate.py" --data "$OUT" --port "$HTTP" --out "$EVAL_OUT" "${EVAL_FLAGS[@]}"
  exit 0
fi
if [ -n "$CHECK" ]; then
  [ "$failed" = 0 ] && echo "demo check: OK"
  exit "$failed"
fi
echo
echo "quiverd keeps serving (log: $LOG); Ctrl-C stops it."
trap 'stop; exit 0' INT TERM
wait "$PID"
