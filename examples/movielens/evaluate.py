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
    model's own single user vector for its operator), with a paired
    bootstrap 95% interval (the same users resampled for both; 2,000 resamples, fixed seed);
  - catalogue coverage@50 (distinct items recommended to anyone / items) and intra-list
    diversity@50 (mean 1 - cosine between the item vectors of a list);
  - p50 / p99 wall time of the request as this client sees it (server strategies).
Baselines computed here, exactly, on the same split: most-popular, and with --baselines EASE
(Steck 2019) and ALS with regularisation, confidence and dimension chosen on a validation split
carved from the training part (each user's last 20% of training ratings), never on the test part.
Users with no training history get the most-popular list and are reported apart.

  evaluate.py --data DIR --port 7700 [--users N] [--baselines] [--model DIR:COLLECTION]...
              [--validation COLLECTION] [--out FILE.md]

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
    fit, val = prepare.validation_split(train, 0.2)
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


def fit_channel_weights(search, vdir, collection, log, tolerance):
    """The channel merge's weights (u2i2i, u2u2i, dup, div; u2i and sim stay 1) and i2i list kind,
    fitted on the validation collection (prepare.py's validation/ served as `collection`, its
    plugins run) by coordinate ascent over a grid, two rounds each: first the largest Recall@50
    R* from the defaults, then from there the largest catalogue coverage@50 among settings with
    Recall@50 at least R* - tolerance (the channels are there for breadth).
    Returns the channels fields and the validation (Recall@50, coverage@50) of the defaults and
    of the fit."""
    seen = {t["user"]: set(t["items"]) for t in read_jsonl(os.path.join(vdir, "train.jsonl"))}
    held = {h["user"]: set(h["items"]) for h in read_jsonl(os.path.join(vdir, "heldout.jsonl"))}
    users = sorted(u for u in held if u in seen)
    memo = {}

    def score(setting):
        """(Recall@50, coverage@50 as distinct items recommended) on validation."""
        key = tuple(sorted(setting.items()))
        if key not in memo:
            kind, weights = setting["i2i_kind"], {k: v for k, v in setting.items() if k != "i2i_kind"}
            lists = {}
            for u in users:
                body = {"channels": {"user": u, "i2i_kind": kind, "weights": weights},
                        "k": min(MAX_K, K + len(seen[u]))}
                lists[u] = [m for m in search(body, collection)[0] if m not in seen[u]][:K]
            memo[key] = (recall(lists, held), len({m for got in lists.values() for m in got}))
        return memo[key]

    grid = {"u2i2i": [0.0, 0.25, 0.5, 0.75, 1.0], "u2u2i": [0.0, 0.25, 0.5, 0.75, 1.0],
            "dup": [0.0, 0.1, 0.25, 0.5, 1.0], "div": [0.0, 0.1, 0.2, 0.4], "i2i_kind": ["i2i", "i2i_cf"]}
    default = {"u2i2i": 1.0, "u2u2i": 1.0, "dup": 0.5, "div": 0.2, "i2i_kind": "i2i"}
    best = dict(default)

    def ascend(objective, what):
        """Two rounds of coordinate ascent on `best` (ties keep the current value)."""
        for _ in range(2):
            for field, values in grid.items():
                best[field] = max(values, key=lambda v: (objective({**best, field: v}), v == best[field]))
            log(f"  channel weights ({what}): {best}, validation Recall@50 {score(best)[0]:.4f}, "
                f"{score(best)[1]} items")

    ascend(lambda s: score(s)[0], "recall")
    floor = score(best)[0] - tolerance
    # Feasible first, then coverage, then recall.
    ascend(lambda s: (score(s)[0] >= floor, score(s)[1], score(s)[0]), f"coverage within {tolerance:g} of that recall")
    return best, score(default), score(best)


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
    ap.add_argument("--validation", default="", metavar="COLLECTION",
                    help="the collection serving DATA/validation (prepare.py's validation split, plugins "
                         "run): fit the channel merge's weights there and add the fitted channels row")
    ap.add_argument("--channel-tolerance", type=float, default=0.005,
                    help="the fitted channel weights maximise coverage among settings within this much of the best "
                         "validation Recall@50")
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
    notes = {}
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
    if a.validation:
        log("channel weights: fitted on the validation collection")
        fitted, s_default, s_fitted = fit_channel_weights(search, os.path.join(a.data, "validation"), a.validation,
                                                          log, a.channel_tolerance)
        weights = {k: v for k, v in fitted.items() if k != "i2i_kind"}
        strategies.append(("channels (weights fitted on validation)",
                           lambda u, n: {"channels": {"user": u, "i2i_kind": fitted["i2i_kind"], "weights": weights},
                                         "k": n}, a.collection))
        notes["channels (weights fitted on validation)"] = (
            f"{fitted['i2i_kind']} lists, weights u2i2i {weights['u2i2i']:g}, u2u2i {weights['u2u2i']:g}, "
            f"dup {weights['dup']:g}, div {weights['div']:g}; validation Recall@50 {s_fitted[0]:.4f} and "
            f"{s_fitted[1]} items recommended, against {s_default[0]:.4f} and {s_default[1]} with the defaults")
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
        elif kind == "sasrec":
            strategies.append(("SASRec u2i (user vector)", lambda u, n, m=m: {"vector": m[u]["vector"], "k": n}, mcol))
        elif kind == "mvke":
            strategies += [
                ("MVKE model u2i (mean-alpha single vector)", lambda u, n, m=m: {"vector": m[u]["vector"], "k": n},
                 mcol),
                ("MVKE model, MVKE operator (per_topic)", lambda u, n, m=m: {"mvke": {"user_vectors": m[u]["mvke"]},
                                                                            "k": n}, mcol),
                ("MVKE model, MVKE operator (rescore)", lambda u, n, m=m: {"mvke": {"user_vectors": m[u]["mvke"],
                                                                                    "strategy": "rescore"},
                                                                           "k": n}, mcol),
            ]
        else:
            strategies += [
                ("ComiRec readout (mean of interests)", lambda u, n, m=m: {"vector": m[u]["vector"], "k": n}, mcol),
                ("ComiRec max over interests", lambda u, n, m=m: {"vectors": m[u]["interests"], "aggregate": "max",
                                                                  "k": n}, mcol),
            ]
    lists, times = {}, {}
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
                "ComiRec readout (mean of interests)" if name.startswith("ComiRec") else
                "MVKE model u2i (mean-alpha single vector)" if name.startswith("MVKE model") else "u2i (user vector)")
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
    fitted_name = "channels (weights fitted on validation)"
    if fitted_name in results:
        f_, u_ = results[fitted_name], results["u2i (user vector)"]
        best_line += (f"\n\nChannels with fitted weights against u2i (user vector): Recall@50 "
                      f"{paired(fitted_name, 'u2i (user vector)')}, coverage@50 {f_['coverage']:.3f} against "
                      f"{u_['coverage']:.3f}, tail Recall@50 {f_['tail']:.4f} against {u_['tail']:.4f}.")
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
                    f"{a.out}{flag}` (it runs `evaluate.py --data DIR --port PORT --out {a.out}{flag}"
                    f"{' --validation ' + a.validation if a.validation else ''}` against the demo)  \n"
                    f"{len(users)} users, {len(item_ids)} items; each user's last 20% of ratings held out; every "
                    f"training item excluded from every list; short head: the {head_n} most-rated items (half of "
                    f"the training ratings); latency: one client over REST, keep-alive.\n\n"
                    + report + "\n" + kept)


if __name__ == "__main__":
    main()
