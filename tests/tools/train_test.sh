#!/usr/bin/env bash
# examples/movielens/train.py (the divide-and-conquer model and ComiRec-SA, python3-torch) on
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
"$BUILD/tools/quiver" build --out "$TMP/version" --name movies_dc --vectors "$TMP/dc/items.npy" \
  --attributes "$TMP/dc/items.jsonl" --users "$TMP/dc/users.json" --metric ip --index flat \
  --clusters 8 >/dev/null
echo "train test: OK"
