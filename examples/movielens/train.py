#!/usr/bin/env python3
"""Trains a retrieval model on prepare.py's training part, on CPU, for Quiver's operators:
  --model dc       the divide-and-conquer model (Kuaishou) for cluster quotas (described below);
  --model comirec  ComiRec-SA for multi-interest max-merge: K interest vectors per user, each an
                   attention-weighted sum of the history's item embeddings, each example trained
                   through the interest closest to its target (the max the server takes), the
                   single readout being their mean; users.jsonl holds "interests" instead of "p";
  --model mvke     virtual-kernel experts (MVKE) for Quiver's MVKE operator: K learned virtual
                   kernels q_k; user side, kernel k attends over the history's item embeddings
                   and an MLP of the pooled embedding and q_k gives the expert u_k; item side,
                   the gate alpha_ik = softmax_k(t_i . G q_k / tau); trained on the served score
                   sum_k alpha_ik (u_k . t_i). items.jsonl carries alpha_i as "topics",
                   users.jsonl the K experts as "mvke", and as the single "vector" the experts
                   weighted by the catalogue's mean alpha (the score with each item's alpha
                   replaced by the mean);
  --model sasrec   SASRec, an order-aware single vector: the last L events (oldest first) with
                   learned position embeddings through two causal self-attention blocks (one
                   head, dropout 0.2), the user vector being the output at the newest event.

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

All four share the item tower's start (ALS), the examples and the loss's negatives (uniform and
in-cluster).

Output (--out): items.npy (t_i, float32, prepare.py's item order), items.jsonl (prepare.py's
attributes with "cluster"; "topics" only from mvke, its gate's alpha), users.jsonl (per user:
"vector" u from the whole training part, and "p" the intent head's distribution, "interests"
or "mvke"), users.json (the POST .../users body: u and the recent history), model.json
(settings, losses per epoch).

  train.py --data PREPARED_DIR --out DIR [--model dc|comirec|mvke|sasrec] [--epochs 10] [--clusters 16] [--validate]

On 2 cores for ml-latest-small (80,062 examples, 10 epochs): about 30 s (dc), 50 s (mvke),
5 minutes (sasrec). The defaults are the best of a grid on the validation split (--validate;
bench/results/dc_validation.md).

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


def item_table(n_items, dim):
    """The item tower's embeddings: one row per item, N(0, 0.05), and a zero padding row last."""
    table = torch.nn.Embedding(n_items + 1, dim, padding_idx=n_items)
    torch.nn.init.normal_(table.weight, std=0.05)
    with torch.no_grad():
        table.weight[n_items].zero_()
    return table


class SelfAttentive(torch.nn.Module):
    """SASRec: the history (oldest first, newest last) through causal self-attention blocks with
    learned position embeddings; the user vector is the output at the newest event."""

    def __init__(self, n_items, dim, history, blocks=2, heads=1, dropout=0.2):
        super().__init__()
        self.pad = n_items
        self.items = item_table(n_items, dim)
        self.position = torch.nn.Embedding(history, dim)
        torch.nn.init.normal_(self.position.weight, std=0.05)
        layer = torch.nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, blocks)
        self.norm = torch.nn.LayerNorm(dim)
        self.mask = torch.triu(torch.full((history, history), float("-inf")), 1)

    def user(self, hist):
        """hist: (B, L) item rows, newest first, padded: the output at the newest event."""
        seq = hist.flip(1)  # oldest first; the padding first, the newest event last
        # Padding positions carry nothing (not even their position); with the causal mask only
        # the events before a position reach it, and the newest, last, sees them all.
        x = self.items(seq) * self.items.embedding_dim ** 0.5 + self.position.weight[None]
        x = x * (seq != self.pad)[..., None]
        h = self.encoder(x, mask=self.mask)
        return self.norm(h[:, -1])


class DivideAndConquer(torch.nn.Module):
    def __init__(self, n_items, dim, clusters, history):
        super().__init__()
        self.items = item_table(n_items, dim)
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
        self.items = item_table(n_items, dim)
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


class VirtualKernelExperts(torch.nn.Module):
    """MVKE: K virtual kernels q_k. User side: kernel k attends over the history's item embeddings
    and an MLP of the pooled embedding and q_k gives u_k. Item side: the gate
    alpha_ik = softmax_k(t_i . G q_k / tau). Score = sum_k alpha_ik (u_k . t_i), Quiver's MVKE."""

    def __init__(self, n_items, dim, kernels, history):
        super().__init__()
        self.pad = n_items
        self.items = item_table(n_items, dim)
        self.kernels = torch.nn.Parameter(torch.randn(kernels, dim) * 0.5)
        self.key = torch.nn.Linear(dim, dim, bias=False)
        self.position = torch.nn.Parameter(torch.zeros(history))
        self.mlp = torch.nn.Sequential(torch.nn.Linear(2 * dim, dim), torch.nn.ReLU(), torch.nn.Linear(dim, dim))
        self.gate = torch.nn.Linear(dim, dim, bias=False)
        self.log_tau = torch.nn.Parameter(torch.zeros(()))

    def experts(self, hist):
        """hist: (B, L) item rows, newest first, padded: the K user vectors, (B, K, dim)."""
        e = self.items(hist)
        a = torch.einsum("bld,kd->blk", self.key(e), self.kernels) / e.shape[-1] ** 0.5
        a = a + self.position[None, :, None]
        a = torch.softmax(a.masked_fill((hist == self.pad)[..., None], -1e9), dim=1)
        pooled = torch.einsum("blk,bld->bkd", a, e)
        q = self.kernels[None].expand(len(hist), -1, -1)
        return self.mlp(torch.cat([pooled, q], -1))

    def alpha(self, t):
        """t: (..., dim) item embeddings: their topic weights, (..., K), summing to 1."""
        return torch.softmax(self.gate(t) @ self.kernels.T / self.log_tau.exp(), -1)


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
    ap.add_argument("--model", choices=["dc", "comirec", "mvke", "sasrec"], default="dc",
                    help="dc: divide-and-conquer (clusters, intent head); comirec: ComiRec-SA multi-interest; "
                         "mvke: virtual-kernel experts (topic weights per item, one user vector per topic); "
                         "sasrec: SASRec (order-aware single vector)")
    ap.add_argument("--interests", type=int, default=0,
                    help="comirec: interests per user (0: 2, which beat 4 on validation); mvke: virtual "
                         "kernels, the collection's topics (0: 4)")
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
    ap.add_argument("--lr", type=float, default=0.0, help="Adam's step (0: 3e-3 for sasrec, 1e-3 for the others)")
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
    a.interests = a.interests or (4 if a.model == "mvke" else 2)
    a.lr = a.lr or (3e-3 if a.model == "sasrec" else 1e-3)
    if a.clusters < 2 or not (a.dim == 0 or a.dim >= 2) or min(a.history, a.epochs, a.interests, a.intent_window) < 1 \
            or not a.lr > 0:
        sys.exit("train.py: --clusters must be at least 2, --dim 0 (the ALS vectors') or at least 2, "
                 "--history, --epochs, --interests and --intent-window at least 1, --lr above 0")
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

    if a.model == "comirec":
        model = MultiInterest(n, a.dim, a.interests, L)
    elif a.model == "mvke":
        model = VirtualKernelExperts(n, a.dim, a.interests, L)
    elif a.model == "sasrec":
        model = SelfAttentive(n, a.dim, L)
    else:
        model = DivideAndConquer(n, a.dim, a.clusters, L)
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
            # Candidates: the target, uniform negatives shared by the batch, and per-example
            # negatives from the target's cluster.
            uni = torch.from_numpy(rng.integers(0, n, a.negatives))
            same = torch.stack([torch.from_numpy(rng.choice(members[int(k)], a.cluster_negatives))
                                for k in target_cluster[b]])
            own = torch.cat([tgt[:, None], same], 1)
            t_own, t_uni = model.items(own), model.items(uni)
            u = None
            if a.model == "mvke":
                # Trained as served: Quiver's MVKE score sum_k alpha_ik (u_k . t_i).
                experts = model.experts(hists[b])
                s_own = (torch.bmm(t_own, experts.transpose(1, 2)) * model.alpha(t_own)).sum(-1)
                s_uni = (torch.einsum("bkd,nd->bnk", experts, t_uni) * model.alpha(t_uni)[None]).sum(-1)
            else:
                if a.model == "comirec":
                    # Trained as served: each example through the interest closest to its target.
                    v = model.interests(hists[b])
                    with torch.no_grad():
                        best = (v * t_own[:, :1]).sum(-1).argmax(1)
                    u = v[torch.arange(len(b)), best]
                else:
                    u = model.user(hists[b])
                s_own, s_uni = torch.einsum("bd,bmd->bm", u, t_own), u @ t_uni.T
            s_uni = s_uni.masked_fill(uni[None, :] == tgt[:, None], -1e9)
            s_same = s_own[:, 1:].masked_fill(same == tgt[:, None], -1e9)
            logits = torch.cat([s_own[:, :1], s_uni, s_same], 1)
            retrieval = torch.nn.functional.cross_entropy(logits, torch.zeros(len(b), dtype=torch.long))
            loss = retrieval
            if a.model == "dc":
                loss = loss + a.intent_weight * torch.nn.functional.cross_entropy(model.intent(u), intents[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(b)
        losses.append(total / len(perm))
        print(f"  epoch {epoch + 1}: loss {losses[-1]:.4f} ({time.time() - t0:.1f} s)", file=sys.stderr)

    model.eval()
    torch.set_grad_enabled(False)
    items = model.items.weight[:n].numpy().astype(np.float32)
    alpha = model.alpha(model.items.weight[:n]).numpy() if a.model == "mvke" else None

    def user_side(seq):
        """The user's single vector and what the model's operator takes (numpy)."""
        h = seq[-L:][::-1]
        hist = torch.tensor([h + [n] * (L - len(h))])
        if a.model == "mvke":
            # The single vector: the experts weighted by the catalogue's mean alpha (the score
            # with every item's alpha replaced by the mean).
            experts = model.experts(hist)[0].numpy()
            return alpha.mean(0) @ experts, {"mvke": experts}
        u = model.user(hist)
        if a.model == "comirec":
            return u[0].numpy(), {"interests": model.interests(hist)[0].numpy()}
        if a.model == "sasrec":
            return u[0].numpy(), {}
        return u[0].numpy(), {"p": torch.softmax(model.intent(u), -1)[0].numpy().astype(np.float64)}

    if a.validate:
        found, other = [], []
        for u, targets in held.items():
            vector, extra = user_side(sequences[u])
            s = items @ vector
            s[sequences[u]] = -np.inf
            top = np.argpartition(-s, 49)[:50]
            found.append(len(targets & set(top.tolist())) / len(targets))
            if a.model == "sasrec":
                continue
            if a.model == "dc":  # quotas with the intent head's p
                picked = quota_top(s, extra["p"], labels, 50)
            else:  # max over the interests, or the exact MVKE score
                s = ((items @ extra["interests"].T).max(1) if a.model == "comirec" else
                     (alpha * (items @ extra["mvke"].T)).sum(1))
                s[sequences[u]] = -np.inf
                picked = np.argpartition(-s, 49)[:50].tolist()
            other.append(len(targets & set(picked)) / len(targets))
        what = {"dc": "with quotas (a 1)", "comirec": "max over the interests", "mvke": "MVKE score"}.get(a.model)
        print(f"train.py: validation Recall@50 {np.mean(found):.4f}"
              + (f", {what} {np.mean(other):.4f}" if what else "") + f" ({len(found)} users)")
        return
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "items.npy"), items)
    with open(os.path.join(a.out, "items.jsonl"), "w", encoding="utf-8") as f:
        for i, (x, k) in enumerate(zip(attributes, labels)):
            # The model's clusters, and (MVKE) its gate's topic weights instead of prepare.py's.
            kept = {key: v for key, v in x.items() if key != "topics"}
            if alpha is not None:
                kept["topics"] = [round(float(w), 7) for w in alpha[i] / alpha[i].sum()]
            f.write(json.dumps({**kept, "cluster": int(k)}, separators=(",", ":")) + "\n")
    body = []
    with open(os.path.join(a.out, "users.jsonl"), "w", encoding="utf-8") as f:
        for user, seq in sorted(sequences.items()):
            vector, extra = user_side(seq)
            vector = prepare.floats(vector)
            if "p" in extra:
                extra["p"] = [round(float(x), 7) for x in extra["p"]]
            else:
                extra = {key: [prepare.floats(v) for v in vs] for key, vs in extra.items()}
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
