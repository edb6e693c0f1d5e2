#!/usr/bin/env python3
"""Offline evaluation of Quiver's retrieval operators on MovieLens latest-small, over REST.

Needs a quiverd serving the demo collection (examples/movielens/demo.sh does it: prepare.py's
files, quiver build, users uploaded, plugins run) and prepare.py's output directory. For every
user, each strategy retrieves candidates for the user's held-out items (the last 20% of their
ratings in time); items in the user's training history are excluded (strategies that cannot
exclude them server-side fetch more and drop them). Reported per strategy: Recall@20 and @50
(held-out items found / held-out items, averaged over users), catalogue coverage@50 (distinct
items recommended to anyone / items), intra-list diversity@50 (mean 1 - cosine between the
item vectors of a list), the p50 / p99 wall time of the request as this client sees it, and
the Recall@50 difference against the strategy's own baseline (u2i for the vector strategies, the
u2i-only channel query for the channel merges) with a paired bootstrap 95% interval (the same
users resampled for both, 2,000 resamples, fixed seed).

  evaluate.py --data DIR --port 7700 [--users N] [--out FILE.md]

Standard library and numpy only.
"""
import argparse
import http.client
import json
import os
import sys
import time

import numpy as np



KEEP_MARKER = "<!-- evaluate.py keeps what follows when it rewrites the table -->"

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="prepare.py's output directory")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7700)
    ap.add_argument("--collection", default="movies")
    ap.add_argument("--users", type=int, default=0, help="evaluate the first N users (0: all)")
    ap.add_argument("--out", default="", help="also write the report here (Markdown)")
    a = ap.parse_args()

    ids = [json.loads(line)["id"] for line in open(os.path.join(a.data, "items.jsonl"))]
    vectors = np.load(os.path.join(a.data, "items.npy"))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {m: i for i, m in enumerate(ids)}
    profiles = {}
    for line in open(os.path.join(a.data, "users.jsonl")):
        p = json.loads(line)
        profiles[p["user"]] = p
    heldout = {}
    for line in open(os.path.join(a.data, "heldout.jsonl")):
        h = json.loads(line)
        heldout[h["user"]] = set(h["items"])
    seen = {u["id"]: {e["item"] for e in u["history"]}
            for u in json.load(open(os.path.join(a.data, "users.json")))["users"]}
    users = sorted(profiles)
    if a.users:
        users = users[:a.users]

    conn = http.client.HTTPConnection(a.host, a.port, timeout=60)

    def search(body):
        data = json.dumps(body)
        t0 = time.perf_counter()
        conn.request("POST", f"/v1/collections/{a.collection}/search", data, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read()
        dt = time.perf_counter() - t0
        if resp.status != 200:
            sys.exit(f"evaluate.py: HTTP {resp.status}: {text[:300]!r}")
        return [h["id"] for h in json.loads(text)["hits"]], dt

    k = 50
    # (name, body for user u, whether the server already excludes the user's history)
    strategies = [
        ("u2i (user vector)", lambda u, n: {"vector": profiles[u]["vector"], "k": n}, False),
        ("multi-interest (max)", lambda u, n: {"vectors": profiles[u]["interests"], "k": n}, False),
        ("quota a=0.5 (auto p)", lambda u, n: {"vectors": profiles[u]["interests"],
                                               "quota": {"p": "auto", "a": 0.5, "total": n, "temperature": 0.5}}, False),
        ("quota a=1 (auto p)", lambda u, n: {"vectors": profiles[u]["interests"],
                                             "quota": {"p": "auto", "a": 1.0, "total": n, "temperature": 0.5}}, False),
        ("quota a=1 (history p)", lambda u, n: {"vectors": profiles[u]["interests"],
                                                "quota": {"p": "history", "user": u, "a": 1.0, "total": n}}, False),
        ("quota a=1 (history p, half-life 1y)", lambda u, n: {"vectors": profiles[u]["interests"],
                                                              "quota": {"p": "history", "user": u, "a": 1.0,
                                                                        "total": n, "half_life": "365d"}}, False),
        ("quota a=1 (learned p)", lambda u, n: {"vectors": profiles[u]["interests"],
                                                "quota": {"p": "learned", "user": u, "a": 1.0, "total": n}}, False),
        ("quota a=1.5 (learned p)", lambda u, n: {"vectors": profiles[u]["interests"],
                                                  "quota": {"p": "learned", "user": u, "a": 1.5, "total": n}}, False),
        ("quota a=1.5 (learned p, user vector)", lambda u, n: {"vector": profiles[u]["vector"],
                                                               "quota": {"p": "learned", "user": u, "a": 1.5,
                                                                         "total": n}}, False),
        ("MVKE (per_topic)", lambda u, n: {"mvke": {"user_vectors": profiles[u]["mvke"]}, "k": n}, False),
        ("MMR (lambda 0.5)", lambda u, n: {"vector": profiles[u]["vector"], "k": n,
                                           "rerank": {"mmr": {"lambda": 0.5}}}, False),
        ("channel u2i only", lambda u, n: {"channels": {"user": u, "u2i2i": False, "u2u2i": False}, "k": n}, True),
        ("channels u2i + u2i2i + u2u2i", lambda u, n: {"channels": {"user": u}, "k": n}, True),
        ("channels with itemcf lists", lambda u, n: {"channels": {"user": u, "i2i_kind": "i2i_cf"}, "k": n}, True),
    ]
    # Each strategy's baseline for the paired difference (the first row of its family).
    baseline = {name: ("channel u2i only" if name.startswith("channel") else "u2i (user vector)")
                for name, _, _ in strategies}
    per_user = {}
    rows = []
    for name, body, excludes in strategies:
        r20, r50, times, ild = [], [], [], []
        covered = set()
        for u in users:
            held = heldout.get(u, set())
            fetch = k if excludes else k + len(seen.get(u, ()))
            got, dt = search(body(u, fetch))
            times.append(dt)
            got = [m for m in got if m not in seen.get(u, ())][:k]
            covered.update(got)
            if held:
                r20.append(len(held.intersection(got[:20])) / len(held))
                r50.append(len(held.intersection(got)) / len(held))
                per_user.setdefault(name, {})[u] = r50[-1]
            rows_idx = [row[m] for m in got if m in row]
            if len(rows_idx) > 1:
                v = unit[rows_idx]
                sims = v @ v.T
                n = len(rows_idx)
                ild.append(1.0 - (sims.sum() - n) / (n * (n - 1)))
        times_ms = np.array(times) * 1000
        rows.append((name, np.mean(r20), np.mean(r50), len(covered) / len(ids), np.mean(ild),
                     np.percentile(times_ms, 50), np.percentile(times_ms, 99)))
        print(f"{name:32s} R@20 {rows[-1][1]:.4f}  R@50 {rows[-1][2]:.4f}  coverage {rows[-1][3]:.3f}  "
              f"ILD {rows[-1][4]:.3f}  p50 {rows[-1][5]:.2f} ms  p99 {rows[-1][6]:.2f} ms", file=sys.stderr)

    rng = np.random.default_rng(2026)
    table = ["| strategy | Recall@20 | Recall@50 | ΔR@50 vs baseline [95% CI] | coverage@50 | ILD@50 | p50 ms | p99 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = baseline[r[0]]
        if base == r[0]:
            delta = "(baseline)"
        else:
            common = sorted(set(per_user[r[0]]) & set(per_user[base]))
            diff = np.array([per_user[r[0]][u] - per_user[base][u] for u in common])
            boot = diff[rng.integers(0, len(diff), (2000, len(diff)))].mean(1)
            lo, hi = np.percentile(boot, [2.5, 97.5])
            delta = f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"
        table.append(f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} | {delta} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.2f} | {r[6]:.2f} |")
    report = "\n".join(table)
    print(report)
    if a.out:
        # The hand-written part of an earlier report (setup, reading) is kept: everything from the
        # marker line on.
        kept = ""
        if os.path.exists(a.out):
            old = open(a.out, encoding="utf-8").read()
            if KEEP_MARKER in old:
                kept = "\n" + old[old.index(KEEP_MARKER):]
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(f"# MovieLens latest-small: retrieval strategies on a temporal split\n\n"
                    f"Command: `QUIVER_HTTP_PORT=0 QUIVER_BINARY_PORT=0 examples/movielens/demo.sh build --eval "
                    f"{a.out}` (it runs `evaluate.py --data DIR --port PORT --out {a.out}` against the demo)  \n"
                    f"{len(users)} users, {len(ids)} items; each user's last 20% of ratings held out; training "
                    f"history excluded from every list; latency: one client over REST, keep-alive.\n\n"
                    + report + "\n" + kept)


if __name__ == "__main__":
    main()
