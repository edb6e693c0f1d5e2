#!/usr/bin/env python3
"""Trains a retrieval model on prepare.py's training part, on CPU, for Quiver's operators:
--model dc, the divide-and-conquer model (Kuaishou) for cluster quotas (described below), or
--model comirec, ComiRec-SA for multi-interest max-merge: K interest vectors per user, each an
attention-weighted sum of the history's item embeddings, each example trained through the
interest closest to its target (the max the server takes), the single readout being their mean;
users.jsonl then holds "interests" instead of "p".

The items are split into C clusters once (k-means over prepare.py's ALS item vectors). The model:
  - item tower: an embedding t_i per item, started from the ALS vectors (scaled to mean norm 1);
  - user tower: the user's last L training items (newest first), each embedding weighted by a
    learned per-position weight, summed, then a two-layer MLP: u;
  - intent head: p_u = softmax(W u + b) over the C clusters.
Each training example is one event of a user's training sequence, predicted from the events
before it. Loss = sampled softmax of the target against uniform negatives from the whole
catalogue AND in-cluster negatives drawn from the target's own cluster (so u ranks well inside
each cluster, which is what a per-cluster search uses), + cross-entropy of the intent head on the
target's cluster. Served through Quiver: a collection with the given clusters (quiver build
--clusters C), u as the query vector, and p_u as the quota's p (M_k = M p_k^a / sum p^a).

Output (--out): items.npy (t_i, float32, prepare.py's item order), items.jsonl (prepare.py's
attributes with "cluster", without "topics"), users.jsonl (per user: "vector" u from the whole training part,
"p" the intent head's distribution), users.json (the POST .../users body: u and the recent
history), model.json (settings, losses per epoch).

  train.py --data PREPARED_DIR --out DIR [--epochs 10] [--clusters 16] [--validate]

About 30 s on 2 cores for ml-latest-small (80,062 examples, 10 epochs). The defaults are the
best of a grid on the validation split (--validate; bench/results/dc_validation.md).

Deterministic for a given seed and thread count. Needs Debian's python3-torch and numpy.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prepare  # noqa: E402


class DivideAndConquer(torch.nn.Module):
    def __init__(self, n_items, dim, clusters, history):
        super().__init__()
        self.items = torch.nn.Embedding(n_items + 1, dim, padding_idx=n_items)  # last row: padding
        torch.nn.init.normal_(self.items.weight, std=0.05)
        with torch.no_grad():
            self.items.weight[n_items].zero_()
        self.position = torch.nn.Parameter(torch.linspace(1.0, 0.2, history))
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.ReLU(), torch.nn.Linear(dim, dim))
        self.intent = torch.nn.Linear(dim, clusters)

    def user(self, hist):
        """hist: (B, L) item rows, newest first, padded with the padding row."""
        e = self.items(hist) * self.position[None, :, None]
        return self.mlp(e.sum(1))


class MultiInterest(torch.nn.Module):
    """ComiRec-SA: K interest vectors, each an attention-weighted sum of the history's item
    embeddings (attention over positions from a two-layer projection of embedding + position)."""

    def __init__(self, n_items, dim, interests, history):
        super().__init__()
        self.pad = n_items
        self.items = torch.nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        torch.nn.init.normal_(self.items.weight, std=0.05)
        with torch.no_grad():
            self.items.weight[n_items].zero_()
        self.position = torch.nn.Parameter(torch.zeros(history, dim))
        self.w1 = torch.nn.Linear(dim, 4 * dim, bias=False)
        self.w2 = torch.nn.Linear(4 * dim, interests, bias=False)

    def interests(self, hist):
        """hist: (B, L) item rows, newest first, padded: (B, K, dim)."""
        e = self.items(hist)
        a = self.w2(torch.tanh(self.w1(e + self.position[None])))  # (B, L, K)
        a = torch.softmax(a.masked_fill((hist == self.pad)[..., None], -1e9), dim=1)
        return torch.einsum("blk,bld->bkd", a, e)

    def user(self, hist):
        """The single-vector readout: the mean of the interests."""
        return self.interests(hist).mean(1)


def quota_top(scores, p, labels, total):
    """Quiver's quota (a = 1): M_k = total * p_k / sum p by largest remainder (ties to the lower
    cluster), then each cluster's M_k best scores."""
    raw = total * p / p.sum()
    m = np.floor(raw).astype(int)
    order = np.lexsort((np.arange(len(p)), -(raw - m)))
    m[order[:total - m.sum()]] += 1
    out = []
    for k in np.flatnonzero(m):
        idx = np.flatnonzero(labels == k)
        out += idx[np.argsort(-scores[idx], kind="stable")[:m[k]]].tolist()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="prepare.py's output directory")
    ap.add_argument("--out", default="", help="where the model goes (required unless --validate)")
    ap.add_argument("--model", choices=["dc", "comirec"], default="dc",
                    help="dc: divide-and-conquer (clusters, intent head); comirec: ComiRec-SA multi-interest")
    ap.add_argument("--interests", type=int, default=2,
                    help="comirec: interests per user (2 beat 4 on validation)")
    ap.add_argument("--clusters", type=int, default=16)
    ap.add_argument("--dim", type=int, default=0, help="0: the ALS vectors' dimension")
    ap.add_argument("--history", type=int, default=50, help="events the user tower reads")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--negatives", type=int, default=200, help="uniform negatives per batch")
    ap.add_argument("--cluster-negatives", type=int, default=20, help="in-cluster negatives per example")
    ap.add_argument("--intent-weight", type=float, default=1.0)
    ap.add_argument("--intent-window", type=int, default=1,
                    help="the intent head learns the cluster mix of the next W events")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--no-init-als", dest="init_als", action="store_false",
                    help="start the item tower at random instead of from prepare.py's ALS vectors")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--validate", action="store_true",
                    help="train on each user's first 80%% of training events and print the Recall@50 on the "
                         "rest of the user vector and of quotas with the intent head's p (for choosing "
                         "settings; writes nothing)")
    a = ap.parse_args()
    if not a.out and not a.validate:
        sys.exit("train.py: --out is required (unless --validate)")
    if a.clusters < 2 or not (a.dim == 0 or a.dim >= 2) or min(a.history, a.epochs, a.interests, a.intent_window) < 1:
        sys.exit("train.py: --clusters must be at least 2, --dim 0 (the ALS vectors') or at least 2, "
                 "--history, --epochs, --interests and --intent-window at least 1")
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    attributes = [json.loads(line) for line in open(os.path.join(a.data, "items.jsonl"), encoding="utf-8")]
    item_ids = [x["id"] for x in attributes]
    row = {m: i for i, m in enumerate(item_ids)}
    n = len(item_ids)
    meta = json.load(open(os.path.join(a.data, "meta.json")))
    sequences, events, rated = {}, {}, {}
    for line in open(os.path.join(a.data, "train.jsonl"), encoding="utf-8"):
        t = json.loads(line)
        order = np.argsort(np.array(t["timestamps"]), kind="stable")
        sequences[t["user"]] = [row[t["items"][i]] for i in order]
        events[t["user"]] = [(t["timestamps"][i], t["items"][i]) for i in order]
        rated[t["user"]] = [(t["timestamps"][i], t["items"][i], t["ratings"][i]) for i in order]
    held = {}
    if a.validate:
        # Each user's last 20% of training events become validation targets; ALS (the start of
        # the item tower, and the clusters) is fitted again on the rest, so nothing sees them.
        for u, seq in sequences.items():
            if len(seq) > 1:
                cut = len(seq) - max(1, int(round(len(seq) * 0.2)))
                held[u] = set(seq[cut:])
                sequences[u], rated[u] = seq[:cut], rated[u][:cut]
        _, _, als, _, _ = prepare.als(rated, n, row, meta["alpha"], meta["reg"], meta["iters"], 7,
                                      meta["rating_max"])
    else:
        als = np.load(os.path.join(a.data, "items.npy")).astype(np.float64)
    a.dim = a.dim or als.shape[1]
    if a.clusters > n:
        sys.exit(f"train.py: --clusters {a.clusters} is more than the {n} items")
    _, labels = prepare.kmeans(prepare.unit(als), a.clusters, 25, rng)
    members = [np.flatnonzero(labels == k) for k in range(a.clusters)]
    max_history = meta["max_history"]

    # Examples: (history before the event, newest first, padded; the event's item).
    L = a.history
    hists, targets, intents = [], [], []
    for seq in sequences.values():
        for pos in range(1, len(seq)):
            h = seq[max(0, pos - L):pos][::-1]
            # The intent head's target: the cluster mix of the next intent_window events (1: the
            # next event's cluster; 20 was no better on validation).
            mix = np.bincount(labels[seq[pos:pos + a.intent_window]], minlength=a.clusters).astype(np.float32)
            hists.append(h + [n] * (L - len(h)))
            targets.append(seq[pos])
            intents.append(mix / mix.sum())
    hists = torch.tensor(hists, dtype=torch.long)
    targets = torch.tensor(targets, dtype=torch.long)
    intents = torch.from_numpy(np.array(intents))
    target_cluster = torch.tensor(labels, dtype=torch.long)[targets]
    print(f"train.py: {len(targets)} examples, {n} items, {a.clusters} clusters, dim {a.dim}", file=sys.stderr)

    multi = a.model == "comirec"
    model = MultiInterest(n, a.dim, a.interests, L) if multi else DivideAndConquer(n, a.dim, a.clusters, L)
    if a.init_als:
        if als.shape[1] != a.dim:
            sys.exit(f"train.py: --init-als needs --dim {als.shape[1]} (the ALS vectors' dimension)")
        with torch.no_grad():
            model.items.weight[:n] = torch.from_numpy(als / np.linalg.norm(als, axis=1).mean()).float()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    losses = []
    for epoch in range(a.epochs):
        t0 = time.time()
        perm = torch.randperm(len(targets))
        total = 0.0
        for start in range(0, len(perm), a.batch):
            b = perm[start:start + a.batch]
            tgt = targets[b]
            if multi:
                # Trained as served: each example through the interest closest to its target.
                v = model.interests(hists[b])
                with torch.no_grad():
                    best = (v * model.items(tgt)[:, None, :]).sum(-1).argmax(1)
                u = v[torch.arange(len(b)), best]
            else:
                u = model.user(hists[b])
            # Uniform negatives shared by the batch, and per-example negatives from the target's cluster.
            uni = torch.from_numpy(rng.integers(0, n, a.negatives))
            same = torch.stack([torch.from_numpy(rng.choice(members[int(k)], a.cluster_negatives))
                                for k in target_cluster[b]])
            pos = (u * model.items(tgt)).sum(-1, keepdim=True)
            s_uni = u @ model.items(uni).T
            s_uni = s_uni.masked_fill(uni[None, :] == tgt[:, None], -1e9)
            s_same = torch.einsum("bd,bnd->bn", u, model.items(same))
            s_same = s_same.masked_fill(same == tgt[:, None], -1e9)
            logits = torch.cat([pos, s_uni, s_same], 1)
            retrieval = torch.nn.functional.cross_entropy(logits, torch.zeros(len(b), dtype=torch.long))
            loss = retrieval
            if not multi:
                loss = loss + a.intent_weight * torch.nn.functional.cross_entropy(model.intent(u), intents[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(b)
        losses.append(total / len(perm))
        print(f"  epoch {epoch + 1}: loss {losses[-1]:.4f} ({time.time() - t0:.1f} s)", file=sys.stderr)

    model.eval()
    if a.validate:
        with torch.no_grad():
            items = model.items.weight[:n].numpy()
            found, other = [], []
            for u, targets in held.items():
                h = sequences[u][-L:][::-1]
                hist = torch.tensor([h + [n] * (L - len(h))])
                uv = model.user(hist)
                s = items @ uv[0].numpy()
                s[sequences[u]] = -np.inf
                top = np.argpartition(-s, 49)[:50]
                found.append(len(targets & set(top.tolist())) / len(targets))
                if multi:  # max over the interests
                    s = (items @ model.interests(hist)[0].numpy().T).max(1)
                    s[sequences[u]] = -np.inf
                    picked = np.argpartition(-s, 49)[:50].tolist()
                else:  # quotas with the intent head's p
                    p = torch.softmax(model.intent(uv), -1)[0].numpy().astype(np.float64)
                    picked = quota_top(s, p, labels, 50)
                other.append(len(targets & set(picked)) / len(targets))
        what = "max over the interests" if multi else "with quotas (a 1)"
        print(f"train.py: validation Recall@50 {np.mean(found):.4f}, {what} {np.mean(other):.4f} "
              f"({len(found)} users)")
        return
    os.makedirs(a.out, exist_ok=True)
    with torch.no_grad():
        vectors = model.items.weight[:n].numpy().astype(np.float32)
        np.save(os.path.join(a.out, "items.npy"), vectors)
        with open(os.path.join(a.out, "items.jsonl"), "w", encoding="utf-8") as f:
            for x, k in zip(attributes, labels):
                # The model's clusters; no MVKE topic weights (its collection has no topics).
                kept = {key: v for key, v in x.items() if key != "topics"}
                f.write(json.dumps({**kept, "cluster": int(k)}, separators=(",", ":")) + "\n")
        body = []
        with open(os.path.join(a.out, "users.jsonl"), "w", encoding="utf-8") as f:
            for user, seq in sorted(sequences.items()):
                h = seq[-L:][::-1]
                hist = torch.tensor([h + [n] * (L - len(h))])
                u = model.user(hist)
                vector = prepare.floats(u[0].numpy())
                if multi:
                    extra = {"interests": [prepare.floats(v) for v in model.interests(hist)[0].numpy()]}
                else:
                    extra = {"p": [round(float(x), 7) for x in torch.softmax(model.intent(u), -1)[0].numpy()]}
                f.write(json.dumps({"user": user, "vector": vector, **extra}, separators=(",", ":")) + "\n")
                recent = events[user][::-1][:max_history]
                body.append({"id": user, "vector": vector,
                             "history": [{"item": m, "timestamp": t} for t, m in recent]})
        with open(os.path.join(a.out, "users.json"), "w", encoding="utf-8") as f:
            json.dump({"users": body}, f, separators=(",", ":"))
    with open(os.path.join(a.out, "model.json"), "w", encoding="utf-8") as f:
        json.dump({**vars(a), "items": n, "examples": len(targets), "losses": losses}, f, indent=1)
    print(f"train.py: -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
