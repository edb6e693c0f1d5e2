#!/usr/bin/env python3
"""The offline half of a recommender on MovieLens latest-small, feeding `quiver build`.

From data/ml-latest-small (ratings.csv, movies.csv; or, with --format dat, a '::'-separated
ratings.dat and movies.dat such as ml-1m's) it
  1. splits each user's ratings in time: the last 20% are held out for evaluation;
  2. trains implicit-feedback ALS (Hu, Koren, Volinsky 2008) on the rest: item vectors t_i and
     user vectors u, scored by inner product;
  3. derives K=4 topics (k-means over the normalised item vectors) and each item's topic
     weights alpha_i = softmax(cos(t_i, c_k) / 0.1) for MVKE;
  4. gives every user up to 4 interest vectors (MIND-style multi-interest): k-means over the
     user's history items, one ALS fold-in per interest group, and K MVKE user vectors (one
     fold-in per topic with the history weighted by alpha);
  5. writes the files `quiver build` reads and the example requests ./quiver.sh run prints.

Output (--out):
  items.npy, items.jsonl      item vectors and attributes (cluster ids come from quiver build's
                              k-means; category = first genre, tags = all genres,
                              timestamp = the movie's first rating, payload = title and genres)
  users.json                  POST /v1/collections/movies/users body: vector + recent history
  users.jsonl                 per user: vector, interests, mvke user vectors (for evaluation)
  heldout.jsonl               per user: the held-out items, oldest first (also users with no
                              training history: they get no vector and are evaluated apart)
  train.jsonl                 per user: every training item, rating and timestamp, oldest first
  validation/                 the training part split again (each user's last 20% held out) with
                              ALS fitted on the rest: items.npy, users.json, train.jsonl,
                              heldout.jsonl (items.jsonl is the one above)
  meta.json                   dimensions, topics, genres, the latest timestamp ("now")
  queries/*.json              example search bodies for one user

Only Python's standard library and numpy (Debian's python3-numpy). Deterministic (fixed seeds).
"""
import argparse
import csv
import json
import os
import sys

import numpy as np

FACTORS = 32
TOPICS = 4
MAX_INTERESTS = 4
HISTORY = 200  # events kept per user (the collection's max_history)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_dat(path, fields):
    """MovieLens 1M/10M style: one record per line, fields separated by '::' (latin-1 text)."""
    rows = []
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("::")
            if len(parts) != len(fields):
                sys.exit(f"prepare.py: {path}:{n}: expected {len(fields)} '::'-separated fields "
                         f"({'::'.join(fields)}), got {len(parts)}")
            rows.append(dict(zip(fields, parts)))
    return rows


def read_data(data, fmt):
    """Ratings and movies as dicts (userId, movieId, rating, timestamp; movieId, title, genres)
    from MovieLens csv files (ratings.csv, movies.csv) or '::'-separated .dat files (ratings.dat:
    user::item::rating::timestamp, movies.dat: item::title::genres). Without a movies file every
    movie is untitled and of genre "(no genres listed)"."""
    if fmt == "csv":
        ratings = read_csv(os.path.join(data, "ratings.csv"))
        movies_path = os.path.join(data, "movies.csv")
        movies = read_csv(movies_path) if os.path.exists(movies_path) else []
    else:
        ratings = read_dat(os.path.join(data, "ratings.dat"), ["userId", "movieId", "rating", "timestamp"])
        movies_path = os.path.join(data, "movies.dat")
        movies = read_dat(movies_path, ["movieId", "title", "genres"]) if os.path.exists(movies_path) else []
    movies = {int(m["movieId"]): m for m in movies}
    for r in ratings:
        m = int(r["movieId"])
        if m not in movies:
            movies[m] = {"movieId": str(m), "title": f"item {m}", "genres": "(no genres listed)"}
    return ratings, movies


def temporal_split(ratings, holdout):
    """Per user, ratings sorted by time; the last `holdout` share (at least one) held out."""
    by_user = {}
    for r in ratings:
        by_user.setdefault(int(r["userId"]), []).append(
            (int(r["timestamp"]), int(r["movieId"]), float(r["rating"])))
    train, test = {}, {}
    for u, rs in by_user.items():
        rs.sort()
        n_test = max(1, int(round(len(rs) * holdout)))
        train[u] = rs[:-n_test]
        test[u] = rs[-n_test:]
    return train, test


def fold_in(Y, YtY, items, conf, reg):
    """The ALS user solve for one history: argmin_x sum_i c_i (1 - x.y_i)^2 + reg |x|^2 over the
    given items, with the other items at confidence 1 and preference 0."""
    Yu = Y[items]
    A = YtY + (Yu.T * (conf - 1.0)) @ Yu + reg * np.eye(Y.shape[1])
    b = Yu.T @ conf
    return np.linalg.solve(A, b)


def als(train, n_items, item_index, alpha, reg, iters, seed, rating_max, factors=FACTORS):
    """Implicit ALS over the users with a training history: confidence 1 + alpha * r / rating_max
    (the rating normalised to the data's own scale), preference 1 for every rated item."""
    rng = np.random.default_rng(seed)
    users = sorted(u for u in train if train[u])
    X = rng.normal(0, 0.01, (len(users), factors))
    Y = rng.normal(0, 0.01, (n_items, factors))
    u_items = [np.array([item_index[m] for _, m, _ in train[u]], dtype=np.int64) for u in users]
    u_conf = [1.0 + alpha * np.array([r for _, _, r in train[u]]) / rating_max for u in users]
    i_users = [[] for _ in range(n_items)]
    i_conf = [[] for _ in range(n_items)]
    for ui, (items, conf) in enumerate(zip(u_items, u_conf)):
        for i, c in zip(items, conf):
            i_users[i].append(ui)
            i_conf[i].append(c)
    i_users = [np.array(x, dtype=np.int64) for x in i_users]
    i_conf = [np.array(x) for x in i_conf]
    for it in range(iters):
        YtY = Y.T @ Y
        for ui in range(len(users)):
            X[ui] = fold_in(Y, YtY, u_items[ui], u_conf[ui], reg)
        XtX = X.T @ X
        for i in range(n_items):
            Y[i] = fold_in(X, XtX, i_users[i], i_conf[i], reg)
    return users, X, Y, u_items, u_conf


def kmeans(points, k, iters, rng):
    """Lloyd's k-means with k-means++ seeding; returns (centroids, labels)."""
    n = len(points)
    centroids = [points[rng.integers(n)]]
    for _ in range(1, k):
        d = np.min(((points[:, None, :] - np.array(centroids)[None]) ** 2).sum(-1), axis=1)
        total = d.sum()
        centroids.append(points[rng.choice(n, p=d / total)] if total > 0 else points[rng.integers(n)])
    c = np.array(centroids)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iters):
        labels = np.argmin(((points[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        for j in range(k):
            members = points[labels == j]
            if len(members):
                c[j] = members.mean(0)
    return c, labels


def unit(v):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def floats(v):
    return [round(float(x), 6) for x in v]


def validation_split(train, holdout):
    """The training part split again in time, for choosing settings: per user with at least two
    training ratings, the last `holdout` share (at least one) becomes validation targets."""
    return temporal_split([{"userId": u, "movieId": m, "rating": r, "timestamp": t}
                           for u, rs in train.items() for t, m, r in rs if len(rs) > 1], holdout)


def write_users(out, train, users, X):
    """users.json (the POST .../users body: vector and the last HISTORY events, newest first) and
    train.jsonl (every training event, oldest first)."""
    with open(os.path.join(out, "users.json"), "w", encoding="utf-8") as f:
        body = []
        for ui, u in enumerate(users):
            recent = sorted(train[u], reverse=True)[:HISTORY]
            body.append({"id": u, "vector": floats(X[ui]),
                         "history": [{"item": m, "timestamp": t} for t, m, _ in recent]})
        json.dump({"users": body}, f, separators=(",", ":"))
    with open(os.path.join(out, "train.jsonl"), "w", encoding="utf-8") as f:
        for u in users:
            f.write(json.dumps({"user": u, "items": [m for _, m, _ in train[u]],
                                "ratings": [r for _, _, r in train[u]],
                                "timestamps": [t for t, _, _ in train[u]]}, separators=(",", ":")) + "\n")


def write_heldout(path, test):
    with open(path, "w", encoding="utf-8") as f:
        for u in sorted(test):
            f.write(json.dumps({"user": u, "items": [m for _, m, _ in test[u]]}) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../data/ml-latest-small"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--format", choices=["csv", "dat"], default="csv",
                    help="csv: ratings.csv and movies.csv (ml-latest); dat: ratings.dat and movies.dat, "
                         "'::'-separated (ml-1m, ml-10m)")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--alpha", type=float, default=10.0,
                    help="ALS confidence 1 + alpha * rating / the data's largest rating")
    ap.add_argument("--reg", type=float, default=0.5)
    ap.add_argument("--demo-user", type=int, default=1)
    a = ap.parse_args()

    ratings, movies = read_data(a.data, a.format)
    train, test = temporal_split(ratings, a.holdout)
    first_seen = {}
    for r in ratings:
        m, t = int(r["movieId"]), int(r["timestamp"])
        first_seen[m] = min(first_seen.get(m, t), t)
    now = max(int(r["timestamp"]) for r in ratings)
    # Items: every movie with a training rating (the others have no embedding to serve).
    item_ids = sorted({m for rs in train.values() for _, m, _ in rs})
    item_index = {m: i for i, m in enumerate(item_ids)}
    rating_max = max(float(r["rating"]) for r in ratings)
    if not rating_max > 0:
        sys.exit("prepare.py: every rating is 0 or less; ratings must be positive (any scale)")
    users, X, Y, u_items, u_conf = als(train, len(item_ids), item_index, a.alpha, a.reg, a.iters, seed=7,
                                       rating_max=rating_max)
    YtY = Y.T @ Y
    rng = np.random.default_rng(11)

    # Topics and their weights.
    Yn = unit(Y)
    counts = np.zeros(len(item_ids))
    for items in u_items:
        np.add.at(counts, items, 1)
    centres, _ = kmeans(Yn[counts >= 5], TOPICS, 25, rng)
    logits = (Yn @ unit(centres).T) / 0.1
    alpha = np.exp(logits - logits.max(1, keepdims=True))
    alpha /= alpha.sum(1, keepdims=True)

    genres = sorted({g for m in movies.values() for g in m["genres"].split("|")})
    genre_index = {g: i for i, g in enumerate(genres)}

    os.makedirs(os.path.join(a.out, "queries"), exist_ok=True)
    np.save(os.path.join(a.out, "items.npy"), Y.astype(np.float32))
    with open(os.path.join(a.out, "items.jsonl"), "w", encoding="utf-8") as f:
        for i, m in enumerate(item_ids):
            gs = movies[m]["genres"].split("|")
            f.write(json.dumps({
                "id": m,
                "topics": [round(float(x), 7) for x in alpha[i] / alpha[i].sum()],
                "category": genre_index[gs[0]],
                "tags": sorted(genre_index[g] for g in gs),
                "timestamp": first_seen[m],
                "payload": {"title": movies[m]["title"], "genres": movies[m]["genres"]},
            }, separators=(",", ":")) + "\n")

    # Users: vector, interests (MIND-style), MVKE vectors; the REST users body; held-out items.
    profiles = []
    for ui, u in enumerate(users):
        items, conf = u_items[ui], u_conf[ui]
        k = min(MAX_INTERESTS, max(1, len(items) // 10))
        if k > 1:
            _, labels = kmeans(Yn[items], k, 10, rng)
            groups = [np.flatnonzero(labels == j) for j in range(k)]
            groups = [g for g in groups if len(g)]
        else:
            groups = [np.arange(len(items))]
        interests = [fold_in(Y, YtY, items[g], conf[g], a.reg) for g in groups]
        mvke = []
        for t in range(TOPICS):
            w = alpha[items, t]
            mvke.append(fold_in(Y, YtY, items, 1.0 + (conf - 1.0) * w, a.reg))
        profiles.append({"user": u, "vector": floats(X[ui]), "interests": [floats(v) for v in interests],
                         "mvke": [floats(v) for v in mvke]})
    with open(os.path.join(a.out, "users.jsonl"), "w", encoding="utf-8") as f:
        for p in profiles:
            f.write(json.dumps(p, separators=(",", ":")) + "\n")
    write_users(a.out, train, users, X)
    # Every user, also those with no training history (cold: no vector, no profile).
    write_heldout(os.path.join(a.out, "heldout.jsonl"), test)
    # The validation set (for settings fitted through the server, such as channel weights): the
    # same items, ALS fitted again on each user's first 80% of training ratings, the rest held out.
    fit, val = validation_split(train, a.holdout)
    vdir = os.path.join(a.out, "validation")
    os.makedirs(vdir, exist_ok=True)
    vusers, vX, vY, _, _ = als(fit, len(item_ids), item_index, a.alpha, a.reg, a.iters, seed=7,
                               rating_max=rating_max)
    np.save(os.path.join(vdir, "items.npy"), vY.astype(np.float32))
    write_users(vdir, fit, vusers, vX)
    write_heldout(os.path.join(vdir, "heldout.jsonl"), val)
    with open(os.path.join(a.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump({"items": len(item_ids), "users": len(users), "cold_users": len(test) - len(users),
                   "dim": FACTORS, "topics": TOPICS, "max_history": HISTORY, "now": now,
                   "rating_max": rating_max, "alpha": a.alpha, "reg": a.reg, "iters": a.iters,
                   "genres": genres}, f, indent=1)

    # Example requests for one user.
    p = next((x for x in profiles if x["user"] == a.demo_user), profiles[0])
    ask = {"k": 10, "payload": True}
    drama = genre_index.get("Drama", 0)
    examples = {
        "u2i": {"vector": p["vector"], **ask},
        "multi_interest": {"vectors": p["interests"], "aggregate": "max", **ask},
        "mvke": {"mvke": {"user_vectors": p["mvke"], "strategy": "per_topic"}, **ask},
        "quota": {"vectors": p["interests"], "quota": {"p": "auto", "a": 0.5, "total": 20, "temperature": 0.5},
                  "payload": True},
        "filter": {"vector": p["vector"], "filter": {"and": [{"eq": {"tag": drama}},
                                                             {"range": {"timestamp": {"gte": now - 5 * 365 * 86400}}}]},
                   **ask},
        "diversity": {"vector": p["vector"], "rerank": {"mmr": {"lambda": 0.5, "window": 50},
                                                        "max_consecutive_category": 1}, **ask},
        "fresh": {"vector": p["vector"], "fresh": {"pool": "730d", "now": now, "boost": 0.2, "half_life": "180d"},
                  **ask},
        "channels": {"channels": {"user": p["user"]}, **ask},
    }
    for name, body in examples.items():
        with open(os.path.join(a.out, "queries", name + ".json"), "w", encoding="utf-8") as f:
            json.dump(body, f, separators=(",", ":"))
    print(f"prepare.py: {len(item_ids)} items, {len(users)} users, dim {FACTORS}, {TOPICS} topics -> {a.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
