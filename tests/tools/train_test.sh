#!/usr/bin/env bash
# examples/movielens/train.py (the divide-and-conquer model, ComiRec-SA, MVKE and SASRec, python3-torch) on
# ml-latest-small:
# two epochs lower the loss; the outputs line up with prepare.py's (same items in the same order,
# a cluster for each, one user vector and one intent distribution summing to 1 per user, a
# users body whose histories are the user's own training items, newest first); and quiver build
# takes them as a collection with those clusters.
# Usage: train_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=$1
BUILD=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
/usr/bin/python3 "$SRC/examples/movielens/prepare.py" --data "$SRC/data/ml-latest-small" --out "$TMP/prep" \
  2>/dev/null
/usr/bin/python3 "$SRC/examples/movielens/train.py" --data "$TMP/prep" --out "$TMP/dc" --epochs 2 \
  --clusters 8 2>/dev/null
/usr/bin/python3 - "$TMP/prep" "$TMP/dc" <<'PY'
import json, sys
import numpy as np
prep, dc = sys.argv[1], sys.argv[2]
model = json.load(open(f"{dc}/model.json"))
assert len(model["losses"]) == 2 and model["losses"][1] < model["losses"][0], model["losses"]
als, vec = np.load(f"{prep}/items.npy"), np.load(f"{dc}/items.npy")
assert vec.shape == als.shape and vec.dtype == np.float32 and np.isfinite(vec).all()
before = [json.loads(l) for l in open(f"{prep}/items.jsonl")]
after = [json.loads(l) for l in open(f"{dc}/items.jsonl")]
assert [x["id"] for x in before] == [x["id"] for x in after]
assert all(0 <= x["cluster"] < 8 for x in after)
assert all({k: v for k, v in x.items() if k != "cluster"} ==
           {k: v for k, v in y.items() if k != "topics"} for x, y in zip(after, before))
train = {}
for l in open(f"{prep}/train.jsonl"):
    t = json.loads(l)
    train[t["user"]] = set(t["items"])
users = [json.loads(l) for l in open(f"{dc}/users.jsonl")]
assert sorted(u["user"] for u in users) == sorted(train)
for u in users:
    assert len(u["vector"]) == als.shape[1] and len(u["p"]) == 8
    assert abs(sum(u["p"]) - 1) < 1e-4 and min(u["p"]) >= 0
body = json.load(open(f"{dc}/users.json"))["users"]
assert len(body) == len(train)
for u in body:
    items = [e["item"] for e in u["history"]]
    stamps = [e["timestamp"] for e in u["history"]]
    assert set(items) <= train[u["id"]] and 0 < len(items) <= 200
    assert stamps == sorted(stamps, reverse=True)
PY
# ComiRec-SA: two interests per user beside the readout, no intent; also two epochs lower the loss.
/usr/bin/python3 "$SRC/examples/movielens/train.py" --data "$TMP/prep" --out "$TMP/mi" --model comirec \
  --epochs 2 --clusters 8 2>/dev/null
/usr/bin/python3 - "$TMP/prep" "$TMP/mi" <<'PY'
import json, sys
import numpy as np
prep, mi = sys.argv[1], sys.argv[2]
model = json.load(open(f"{mi}/model.json"))
assert model["model"] == "comirec" and model["losses"][1] < model["losses"][0], model["losses"]
dim = np.load(f"{prep}/items.npy").shape[1]
for line in open(f"{mi}/users.jsonl"):
    u = json.loads(line)
    assert "p" not in u and len(u["interests"]) == 2 and all(len(v) == dim for v in u["interests"])
    mean = np.mean(np.array(u["interests"]), axis=0)
    assert np.allclose(mean, u["vector"], atol=1e-5), "the readout is not the interests' mean"
PY
# MVKE: K=3 experts per user, the gate's topic weights per item (non-negative, summing to 1), the
# single vector the experts weighted by the catalogue's mean alpha; quiver build takes the topics.
/usr/bin/python3 "$SRC/examples/movielens/train.py" --data "$TMP/prep" --out "$TMP/mvke" --model mvke \
  --interests 3 --epochs 2 --clusters 8 2>/dev/null
/usr/bin/python3 - "$TMP/prep" "$TMP/mvke" <<'PY'
import json, sys
import numpy as np
prep, mvke = sys.argv[1], sys.argv[2]
model = json.load(open(f"{mvke}/model.json"))
assert model["model"] == "mvke" and model["losses"][1] < model["losses"][0], model["losses"]
dim = np.load(f"{prep}/items.npy").shape[1]
items = [json.loads(l) for l in open(f"{mvke}/items.jsonl")]
alpha = np.array([x["topics"] for x in items])
assert alpha.shape == (len(items), 3) and alpha.min() >= 0 and np.allclose(alpha.sum(1), 1, atol=1e-5)
assert alpha.std(0).max() > 1e-3, "the gate gives every item the same topic weights"
for line in open(f"{mvke}/users.jsonl"):
    u = json.loads(line)
    experts = np.array(u["mvke"])
    assert "p" not in u and experts.shape == (3, dim)
    assert np.allclose(alpha.mean(0) @ experts, u["vector"], atol=1e-4), "the single vector is not the mean-alpha mix"
PY
# SASRec: one vector per user, nothing else; two epochs lower the loss.
/usr/bin/python3 "$SRC/examples/movielens/train.py" --data "$TMP/prep" --out "$TMP/sas" --model sasrec \
  --epochs 2 --clusters 8 2>/dev/null
/usr/bin/python3 - "$TMP/prep" "$TMP/sas" <<'PY'
import json, sys
import numpy as np
prep, sas = sys.argv[1], sys.argv[2]
model = json.load(open(f"{sas}/model.json"))
assert model["model"] == "sasrec" and model["losses"][1] < model["losses"][0], model["losses"]
dim = np.load(f"{prep}/items.npy").shape[1]
vectors = []
for line in open(f"{sas}/users.jsonl"):
    u = json.loads(line)
    assert set(u) == {"user", "vector"} and len(u["vector"]) == dim and np.isfinite(u["vector"]).all()
    vectors.append(u["vector"])
assert np.std(np.array(vectors), axis=0).max() > 1e-3, "every user got the same vector"
PY
"$BUILD/tools/quiver" build --out "$TMP/version" --name movies_mvke --vectors "$TMP/mvke/items.npy" \
  --attributes "$TMP/mvke/items.jsonl" --users "$TMP/mvke/users.json" --metric ip --index flat \
  --topics 3 --clusters 8 >/dev/null
"$BUILD/tools/quiver" build --out "$TMP/version" --name movies_dc --vectors "$TMP/dc/items.npy" \
  --attributes "$TMP/dc/items.jsonl" --users "$TMP/dc/users.json" --metric ip --index flat \
  --clusters 8 >/dev/null
echo "train test: OK"
