#!/usr/bin/env bash
# examples/movielens/prepare.py reads MovieLens '::'-separated .dat files (ml-1m's format,
# --format dat) exactly as it reads the csv files: ml-latest-small written out as ratings.dat
# and movies.dat gives the same vectors, users, held-out items and metadata, byte for byte.
# Usage: prepare_formats_test.sh SOURCE_DIR
set -euo pipefail
SRC=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/dat"
/usr/bin/python3 - "$SRC/data/ml-latest-small" "$TMP/dat" <<'PY'
import csv, sys
src, out = sys.argv[1], sys.argv[2]
with open(f"{src}/ratings.csv", newline="", encoding="utf-8") as f, \
        open(f"{out}/ratings.dat", "w", encoding="latin-1") as o:
    for r in csv.DictReader(f):
        o.write(f"{r['userId']}::{r['movieId']}::{r['rating']}::{r['timestamp']}\n")
with open(f"{src}/movies.csv", newline="", encoding="utf-8") as f, \
        open(f"{out}/movies.dat", "w", encoding="latin-1", errors="replace") as o:
    for r in csv.DictReader(f):
        o.write(f"{r['movieId']}::{r['title']}::{r['genres']}\n")
PY
/usr/bin/python3 "$SRC/examples/movielens/prepare.py" --out "$TMP/csv-out" >/dev/null
/usr/bin/python3 "$SRC/examples/movielens/prepare.py" --format dat --data "$TMP/dat" \
  --out "$TMP/dat-out" >/dev/null
for f in items.npy users.json users.jsonl heldout.jsonl meta.json; do
  cmp "$TMP/csv-out/$f" "$TMP/dat-out/$f" || { echo "prepare formats test: $f differs"; exit 1; }
done
# A malformed line is refused, naming the file and line.
printf '1::2::3\n' > "$TMP/dat/ratings.dat"
if /usr/bin/python3 "$SRC/examples/movielens/prepare.py" --format dat --data "$TMP/dat" \
     --out "$TMP/bad" 2> "$TMP/err"; then
  echo "prepare formats test: a malformed ratings.dat was accepted"; exit 1
fi
grep -q "ratings.dat:1: expected 4" "$TMP/err" || { cat "$TMP/err"; exit 1; }
echo "prepare formats test: OK"
