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
#            REPORT.md, the channel merge's weights fitted on a validation collection
#            "movies_val" (prepare.py's validation split, with its own lists); --baselines adds EASE and ALS tuned on a validation split (minutes);
#            --models trains the divide-and-conquer model, ComiRec-SA, MVKE and SASRec
#            (train.py, python3-torch, about 7 minutes) and serves them as the collections
#            "movies_dc", "movies_mi", "movies_mvke" and "movies_sas" beside "movies"
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
  for model in dc comirec mvke sasrec; do
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
if [ "$CHECK" = "--eval" ]; then
  # The validation split (prepare.py's validation/), where evaluate.py fits the channel weights.
  "$QUIVER" build --out "$OUT/data/versions/movielens" --name movies_val \
    --vectors "$OUT/validation/items.npy" --attributes "$OUT/items.jsonl" --metric ip --index hnsw \
    --topics 4 --max-history 200
fi
if [ "$MODELS" = 1 ]; then
  "$QUIVER" build --out "$OUT/data/versions/movielens" --name movies_dc --vectors "$OUT/dc/items.npy" \
    --attributes "$OUT/dc/items.jsonl" --metric ip --index hnsw --clusters 16 --max-history 200
  "$QUIVER" build --out "$OUT/data/versions/movielens" --name movies_mi --vectors "$OUT/comirec/items.npy" \
    --attributes "$OUT/comirec/items.jsonl" --metric ip --index hnsw --clusters 16 --max-history 200
  "$QUIVER" build --out "$OUT/data/versions/movielens" --name movies_sas --vectors "$OUT/sasrec/items.npy" \
    --attributes "$OUT/sasrec/items.jsonl" --metric ip --index hnsw --clusters 16 --max-history 200
  # MVKE: the gate's topic weights as the items' topics, every item in every topic's sub-index.
  TOPICS=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["interests"])' "$OUT/mvke/model.json")
  "$QUIVER" build --out "$OUT/data/versions/movielens" --name movies_mvke --vectors "$OUT/mvke/items.npy" \
    --attributes "$OUT/mvke/items.jsonl" --metric ip --index hnsw --clusters 16 --topics "$TOPICS" \
    --topic-threshold 0 --max-history 200
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
  call POST /v1/collections/movies_mvke/users @"$OUT/mvke/users.json" >/dev/null
  call POST /v1/collections/movies_sas/users @"$OUT/sasrec/users.json" >/dev/null
fi
echo "index-time plugins (docs/plugins.md): neighbor lists for the u2i2i and u2u2i channels, learned intent"
LISTS=('i2i_knn {"config":{"k":50}}' 'itemcf {"config":{"k":50}}' 'u2u_knn {"config":{"k":30}}')
run_plugins() {  # COLLECTION 'PLUGIN BODY'...
  local collection=$1 run plugin
  shift
  for run in "$@"; do
    plugin=${run%% *}
    printf '  %-8s ' "$plugin"
    "$QUIVER" call --addr "127.0.0.1:$BIN" --timeout-ms 600000 POST "/v1/collections/$collection/plugins/$plugin/run" "${run#* }"
  done
}
run_plugins movies "${LISTS[@]}" 'intent {"config":{}}'
if [ "$CHECK" = "--eval" ]; then
  call POST /v1/collections/movies_val/users @"$OUT/validation/users.json" >/dev/null
  echo "the same lists on the validation collection movies_val:"
  run_plugins movies_val "${LISTS[@]}"
fi
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
  EVAL_FLAGS+=(--validation movies_val)
  [ "$MODELS" = 0 ] || EVAL_FLAGS+=(--model "$OUT/dc:movies_dc" --model "$OUT/comirec:movies_mi" --model "$OUT/mvke:movies_mvke" --model "$OUT/sasrec:movies_sas")
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
