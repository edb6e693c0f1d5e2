#!/usr/bin/env python3
"""Offline evaluation of Quiver's retrieval operators on MovieLens latest-small, over REST.

Needs a quiverd serving the demo collection (examples/movielens/demo.sh does it: prepare.py's
files, quiver build, users uploaded, plugins run) and prepare.py's output directory. For every
user, each strategy retrieves candidates for the user's held-out items (the last 20% of their
ratings in time). Every item of the user's training part is excluded, not only the events the
server keeps (strategies that cannot exclude them server-side fetch more and drop them).

Reported per strategy:
  - Recall@20 and @50 (held-out items found / held-out items, averaged over users);
  - tail Recall@50: the same over held-out items outside the short head (the most-rated items
    that together hold 50% of the training ratings);
  - the Recall@50 difference against the strategy's own baseline (u2i for the vector strategies
    and the offline baselines, the u2i-only channel query for the channel merges, a trained
    model's own user vector for its operator), with a paired
    bootstrap 95% interval (the same users resampled for both; 2,000 resamples, fixed seed);
  - catalogue coverage@50 (distinct items recommended to anyone / items) and intra-list
    diversity@50 (mean 1 - cosine between the item vectors of a list);
  - p50 / p99 wall time of the request as this client sees it (server strategies).
Baselines computed here, exactly, on the same split: most-popular, and with --baselines EASE
(Steck 2019) and ALS with regularisation, confidence and dimension chosen on a validation split
carved from the training part (each user's last 20% of training ratings), never on the test part.
Users with no training history get the most-popular list and are reported apart.

  evaluate.py --data DIR --port 7700 [--users N] [--baselines] [--out FILE.md]

Standard library and numpy only.
"""
import argparse
import http.client
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prepare  # noqa: E402  (the same split and ALS as the served model)

KEEP_MARKER = "<!-- evaluate.py keeps what follows when it rewrites the table -->"
K = 50
MAX_K = 10000  # quiverd's default --max-k


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def top_unseen(scores, seen_rows, k):
    """Rows of the k best scores, the seen rows excluded."""
    s = scores.copy()
    if len(seen_rows):
        s[seen_rows] = -np.inf
    k = min(k, len(s))
    part = np.argpartition(-s, k - 1)[:k]
    return part[np.argsort(-s[part], kind="stable")]


def recall(lists, targets):
    got = [len(targets[u] & set(lists[u])) / len(targets[u]) for u in lists if targets.get(u)]
    return float(np.mean(got)) if got else 0.0


def ease(X, lam):
    """EASE item-item weights: B = I - P / diag(P), P = (X'X + lam I)^-1, zero diagonal."""
    G = (X.T @ X).astype(np.float32)
    G[np.diag_indices_from(G)] += lam
    P = np.linalg.inv(G)
    B = -P / np.diag(P)[None, :]
    B[np.diag_indices_from(B)] = 0
    return B


def tuned_baselines(train, item_ids, meta, log):
    """EASE and ALS, their hyper-parameters chosen on a validation split of the training part.
    Returns {name: (user rows, scores matrix, chosen setting)} over the training users."""
    row = {m: i for i, m in enumerate(item_ids)}
    fit, val = prepare.temporal_split(
        [{"userId": u, "movieId": m, "rating": r, "timestamp": t}
         for u, rs in train.items() for t, m, r in rs if len(rs) > 1], 0.2)
    val_targets = {u: {row[m] for _, m, _ in val[u]} for u in val}

    def binary(split):
        users = sorted(u for u in split if split[u])
        X = np.zeros((len(users), len(item_ids)), dtype=np.float32)
        for ui, u in enumerate(users):
            X[ui, [row[m] for _, m, _ in split[u]]] = 1
        return users, X

    def val_recall(users, scores, split):
        lists = {u: top_unseen(scores[ui], [row[m] for _, m, _ in split[u]], K) for ui, u in enumerate(users)}
        return recall(lists, val_targets)

    out = {}
    fit_users, Xf = binary(fit)
    best = None
    for lam in (100.0, 300.0, 1000.0):
        t0 = time.time()
        r = val_recall(fit_users, Xf @ ease(Xf, lam), fit)
        log(f"  EASE lambda {lam:g}: validation Recall@50 {r:.4f} ({time.time() - t0:.0f} s)")
        if best is None or r > best[0]:
            best = (r, lam)
    users, X = binary(train)
    out["EASE (tuned lambda)"] = (users, X @ ease(X, best[1]), f"lambda {best[1]:g}")
    best = None
    for dim in (32, 64):
        for reg in (0.5, 2.0, 8.0):
            for alpha in (5.0, 10.0, 20.0):
                t0 = time.time()
                us, Xu, Y, _, _ = prepare.als(fit, len(item_ids), row, alpha, reg, meta["iters"], 7,
                                              meta["rating_max"], factors=dim)
                r = val_recall(us, Xu @ Y.T, fit)
                log(f"  ALS dim {dim} reg {reg:g} alpha {alpha:g}: validation Recall@50 {r:.4f} "
                    f"({time.time() - t0:.0f} s)")
                if best is None or r > best[0]:
                    best = (r, dim, reg, alpha)
    _, dim, reg, alpha = best
    us, Xu, Y, _, _ = prepare.als(train, len(item_ids), row, alpha, reg, meta["iters"], 7,
                                  meta["rating_max"], factors=dim)
    out["ALS (tuned on validation)"] = (us, Xu @ Y.T, f"dim {dim}, reg {reg:g}, alpha {alpha:g}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="prepare.py's output directory")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7700)
    ap.add_argument("--collection", default="movies")
    ap.add_argument("--users", type=int, default=0, help="evaluate the first N users (0: all)")
    ap.add_argument("--baselines", action="store_true",
                    help="also EASE and tuned ALS (minutes: a validation grid of each)")
    ap.add_argument("--model", action="append", default=[], metavar="DIR:COLLECTION",
                    help="also evaluate the model train.py wrote to DIR, served as COLLECTION (repeatable)")
    ap.add_argument("--out", default="", help="also write the report here (Markdown)")
    a = ap.parse_args()
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731

    meta = json.load(open(os.path.join(a.data, "meta.json")))
    item_ids = [json.loads(line)["id"] for line in open(os.path.join(a.data, "items.jsonl"))]
    vectors = np.load(os.path.join(a.data, "items.npy"))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {m: i for i, m in enumerate(item_ids)}
    profiles = {p["user"]: p for p in read_jsonl(os.path.join(a.data, "users.jsonl"))}
    train = {}
    for t in read_jsonl(os.path.join(a.data, "train.jsonl")):
        train[t["user"]] = list(zip(t["timestamps"], t["items"], t["ratings"]))
    seen = {u: {m for _, m, _ in rs} for u, rs in train.items()}
    heldout = {h["user"]: set(h["items"]) for h in read_jsonl(os.path.join(a.data, "heldout.jsonl"))}
    users = sorted(u for u in heldout if u in profiles)
    cold = sorted(u for u in heldout if u not in profiles)
    if a.users:
        users = users[:a.users]

    # Popularity and the short head: the most-rated items holding half the training ratings.
    counts = np.zeros(len(item_ids))
    for u, rs in train.items():
        for _, m, _ in rs:
            counts[row[m]] += 1
    by_count = np.argsort(-counts, kind="stable")
    head_n = int(np.searchsorted(np.cumsum(counts[by_count]), counts.sum() / 2)) + 1
    head = {item_ids[i] for i in by_count[:head_n]}
    tail_targets = {u: {m for m in heldout[u] if m not in head} for u in heldout}

    conn = http.client.HTTPConnection(a.host, a.port, timeout=60)

    def search(body, collection):
        data = json.dumps(body)
        t0 = time.perf_counter()
        conn.request("POST", f"/v1/collections/{collection}/search", data, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read()
        dt = time.perf_counter() - t0
        if resp.status != 200:
            sys.exit(f"evaluate.py: HTTP {resp.status}: {text[:300]!r}")
        return [h["id"] for h in json.loads(text)["hits"]], dt

    # (name, body for user u asking for n hits); every list is filtered here against all of the
    # user's training items
    strategies = [
        ("u2i (user vector)", lambda u, n: {"vector": profiles[u]["vector"], "k": n}),
        ("multi-interest (max)", lambda u, n: {"vectors": profiles[u]["interests"], "k": n}),
        ("quota a=0.5 (auto p)", lambda u, n: {"vectors": profiles[u]["interests"],
                                               "quota": {"p": "auto", "a": 0.5, "total": n, "temperature": 0.5}}),
        ("quota a=1 (auto p)", lambda u, n: {"vectors": profiles[u]["interests"],
                                             "quota": {"p": "auto", "a": 1.0, "total": n, "temperature": 0.5}}),
        ("quota a=1 (history p)", lambda u, n: {"vectors": profiles[u]["interests"],
                                                "quota": {"p": "history", "user": u, "a": 1.0, "total": n}}),
        ("quota a=1 (history p, half-life 1y)", lambda u, n: {"vectors": profiles[u]["interests"],
                                                              "quota": {"p": "history", "user": u, "a": 1.0,
                                                                        "total": n, "half_life": "365d"}}),
        ("quota a=1 (learned p)", lambda u, n: {"vectors": profiles[u]["interests"],
                                                "quota": {"p": "learned", "user": u, "a": 1.0, "total": n}}),
        ("quota a=1.5 (learned p)", lambda u, n: {"vectors": profiles[u]["interests"],
                                                  "quota": {"p": "learned", "user": u, "a": 1.5, "total": n}}),
        ("quota a=1.5 (learned p, user vector)", lambda u, n: {"vector": profiles[u]["vector"],
                                                               "quota": {"p": "learned", "user": u, "a": 1.5,
                                                                         "total": n}}),
        ("MVKE (per_topic)", lambda u, n: {"mvke": {"user_vectors": profiles[u]["mvke"]}, "k": n}),
        ("MMR (lambda 0.5)", lambda u, n: {"vector": profiles[u]["vector"], "k": n,
                                           "rerank": {"mmr": {"lambda": 0.5}}}),
        ("channel u2i only", lambda u, n: {"channels": {"user": u, "u2i2i": False, "u2u2i": False}, "k": n}),
        ("channels u2i + u2i2i + u2u2i", lambda u, n: {"channels": {"user": u}, "k": n}),
        ("channels with itemcf lists", lambda u, n: {"channels": {"user": u, "i2i_kind": "i2i_cf"}, "k": n}),
    ]
    strategies = [(name, body, a.collection) for name, body in strategies]
    for spec in a.model:
        # A trained model's own collection: its user vector, and its operator.
        mdir, _, mcol = spec.rpartition(":")
        if not mdir or not mcol:
            sys.exit(f"evaluate.py: --model wants DIR:COLLECTION, got {spec!r}")
        kind = json.load(open(os.path.join(mdir, "model.json")))["model"]
        m = {p["user"]: p for p in read_jsonl(os.path.join(mdir, "users.jsonl"))}
        if kind == "dc":
            strategies += [
                ("DC u2i (user vector)", lambda u, n, m=m: {"vector": m[u]["vector"], "k": n}, mcol),
                ("DC quota a=1 (intent head p)", lambda u, n, m=m: {"vector": m[u]["vector"],
                                                                     "quota": {"p": m[u]["p"], "a": 1.0, "total": n}},
                 mcol),
                ("DC quota a=1.5 (intent head p)", lambda u, n, m=m: {"vector": m[u]["vector"],
                                                                       "quota": {"p": m[u]["p"], "a": 1.5,
                                                                                 "total": n}}, mcol),
            ]
        else:
            strategies += [
                ("ComiRec readout (mean of interests)", lambda u, n, m=m: {"vector": m[u]["vector"], "k": n}, mcol),
                ("ComiRec max over interests", lambda u, n, m=m: {"vectors": m[u]["interests"], "aggregate": "max",
                                                                  "k": n}, mcol),
            ]
    lists, times, notes = {}, {}, {}
    for name, body, collection in strategies:
        lists[name], times[name] = {}, []
        for u in users:
            # The server keeps the last max_history events: the rest are dropped here.
            fetch = min(MAX_K, K + len(seen.get(u, ())))
            got, dt = search(body(u, fetch), collection)
            times[name].append(dt)
            lists[name][u] = [m for m in got if m not in seen.get(u, ())][:K]
        log(f"{name}: done")

    # Offline baselines over the same users, exact.
    popular = [item_ids[i] for i in by_count]
    lists["most-popular"] = {u: [m for m in popular[:K + len(seen.get(u, ()))] if m not in seen.get(u, ())][:K]
                             for u in users}
    if a.baselines:
        for name, (us, scores, setting) in tuned_baselines(train, item_ids, meta, log).items():
            index = {u: i for i, u in enumerate(us)}
            lists[name] = {u: [item_ids[i] for i in top_unseen(scores[index[u]], [row[m] for m in seen[u]], K)]
                           for u in users}
            notes[name] = setting
    cold_lists = {u: popular[:K] for u in cold}

    def metrics(name, got, targets_users):
        r20 = [len(heldout[u] & set(got[u][:20])) / len(heldout[u]) for u in targets_users if heldout[u]]
        per_user = {u: len(heldout[u] & set(got[u])) / len(heldout[u]) for u in targets_users if heldout[u]}
        tail = [len(tail_targets[u] & set(got[u])) / len(tail_targets[u]) for u in targets_users if tail_targets[u]]
        covered = set()
        ild = []
        for u in targets_users:
            covered.update(got[u])
            rows_idx = [row[m] for m in got[u] if m in row]
            if len(rows_idx) > 1:
                v = unit[rows_idx]
                n = len(rows_idx)
                ild.append(1.0 - ((v @ v.T).sum() - n) / (n * (n - 1)))
        t = np.array(times.get(name, [])) * 1000
        return {"r20": np.mean(r20) if r20 else 0.0, "r50": np.mean(list(per_user.values())) if per_user else 0.0,
                "tail": np.mean(tail) if tail else 0.0, "coverage": len(covered) / len(item_ids),
                "ild": np.mean(ild) if ild else 0.0, "per_user": per_user,
                "p50": np.percentile(t, 50) if len(t) else None, "p99": np.percentile(t, 99) if len(t) else None}

    results = {name: metrics(name, got, users) for name, got in lists.items()}
    rng = np.random.default_rng(2026)

    def paired(name, base):
        a_, b_ = results[name]["per_user"], results[base]["per_user"]
        common = sorted(set(a_) & set(b_))
        diff = np.array([a_[u] - b_[u] for u in common])
        boot = diff[rng.integers(0, len(diff), (2000, len(diff)))].mean(1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        return f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"

    def delta(name):
        base = ("channel u2i only" if name.startswith("channel") else
                "DC u2i (user vector)" if name.startswith("DC") else
                "ComiRec readout (mean of interests)" if name.startswith("ComiRec") else "u2i (user vector)")
        return "(baseline)" if base == name else paired(name, base)

    ms = lambda x: "" if x is None else f"{x:.2f}"  # noqa: E731
    table = ["| strategy | Recall@20 | Recall@50 | ΔR@50 vs baseline [95% CI] | tail R@50 | coverage@50 | ILD@50 | p50 ms | p99 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        label = name + (f" ({notes[name]})" if name in notes else "")
        table.append(f"| {label} | {r['r20']:.4f} | {r['r50']:.4f} | {delta(name)} | {r['tail']:.4f} | "
                     f"{r['coverage']:.3f} | {r['ild']:.3f} | {ms(r['p50'])} | {ms(r['p99'])} |")
    if cold:
        c = metrics("cold", cold_lists, cold)
        cold_line = (f"Users with no training history: {len(cold)}, served the most-popular list: Recall@50 "
                     f"{c['r50']:.4f}, Recall@20 {c['r20']:.4f}.")
    else:
        cold_line = "Users with no training history: none in this data (each has at least one training rating)."
    # The best strategy Quiver serves against each offline baseline, paired as above.
    served = [name for name, _, _ in strategies]
    best = max(served, key=lambda name: results[name]["r50"])
    against = [f"{base} {paired(best, base)}" for base in results if base not in served]
    best_line = f"Best served strategy, {best} (Recall@50 {results[best]['r50']:.4f}), against " + "; ".join(against) + "."
    report = "\n".join(table) + "\n\n" + best_line + "\n\n" + cold_line
    print(report)
    if a.out:
        # The hand-written part of an earlier report (setup, reading) is kept: everything from the
        # marker line on.
        kept = ""
        if os.path.exists(a.out):
            old = open(a.out, encoding="utf-8").read()
            if KEEP_MARKER in old:
                kept = "\n" + old[old.index(KEEP_MARKER):]
        flag = (" --baselines" if a.baselines else "") + (" --models" if a.model else "")
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(f"# MovieLens latest-small: retrieval strategies on a temporal split\n\n"
                    f"Command: `QUIVER_HTTP_PORT=0 QUIVER_BINARY_PORT=0 examples/movielens/demo.sh build --eval "
                    f"{a.out}{flag}` (it runs `evaluate.py --data DIR --port PORT --out {a.out}{flag}` against the "
                    f"demo)  \n"
                    f"{len(users)} users, {len(item_ids)} items; each user's last 20% of ratings held out; every "
                    f"training item excluded from every list; short head: the {head_n} most-rated items (half of "
                    f"the training ratings); latency: one client over REST, keep-alive.\n\n"
                    + report + "\n" + kept)


if __name__ == "__main__":
    main()
