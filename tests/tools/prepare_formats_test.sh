#!/usr/bin/env bash
# examples/movielens/prepare.py reads MovieLens '::'-separated .dat files (ml-1m's format,
# --format dat) exactly as it reads the csv files: ml-latest-small written out as ratings.dat
# and movies.dat gives the same vectors, users, held-out items and metadata, byte for byte; a
# single-rating user is cold (held out, no vector); a 10-point scale trains as the 5-point one.
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
for f in items.npy users.json users.jsonl heldout.jsonl train.jsonl meta.json; do
  cmp "$TMP/csv-out/$f" "$TMP/dat-out/$f" || { echo "prepare formats test: $f differs"; exit 1; }
done
# A user with a single rating has no training history: held out, evaluated apart (cold), and given
# no vector (an all-zero one would be refused by the server). A 10-point scale trains as a 5-point
# one does (confidence from the rating over the data's largest rating).
/usr/bin/python3 - "$TMP/dat" <<'PY'
import sys
d = sys.argv[1]
lines = open(f"{d}/ratings.dat", encoding="latin-1").read().splitlines()
with open(f"{d}/ratings.dat", "w", encoding="latin-1") as o:
    for line in lines:
        u, m, r, t = line.split("::")
        o.write(f"{u}::{m}::{float(r) * 2}::{t}\n")
    o.write("99999::1::8::1700000000\n")
PY
/usr/bin/python3 "$SRC/examples/movielens/prepare.py" --format dat --data "$TMP/dat" \
  --out "$TMP/scaled-out" >/dev/null 2>&1
/usr/bin/python3 - "$TMP/csv-out" "$TMP/scaled-out" <<'PY'
import json, sys
import numpy as np
base, scaled = sys.argv[1], sys.argv[2]
held = {json.loads(l)["user"] for l in open(f"{scaled}/heldout.jsonl")}
profiled = {json.loads(l)["user"] for l in open(f"{scaled}/users.jsonl")}
assert 99999 in held, "the single-rating user is not held out"
assert 99999 not in profiled, "the single-rating user got a vector"
assert json.load(open(f"{scaled}/meta.json"))["cold_users"] == 1
a, b = np.load(f"{base}/items.npy"), np.load(f"{scaled}/items.npy")
assert a.shape == b.shape and np.allclose(a, b, atol=1e-4), "a 10-point scale trained differently"
PY
# A malformed line is refused, naming the file and line.
printf '1::2::3\n' > "$TMP/dat/ratings.dat"
if /usr/bin/python3 "$SRC/examples/movielens/prepare.py" --format dat --data "$TMP/dat" \
     --out "$TMP/bad" 2> "$TMP/err"; then
  echo "prepare formats test: a malformed ratings.dat was accepted"; exit 1
fi
grep -q "ratings.dat:1: expected 4" "$TMP/err" || { cat "$TMP/err"; exit 1; }
echo "prepare formats test: OK"
