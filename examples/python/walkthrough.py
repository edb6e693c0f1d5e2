#!/usr/bin/env python3
"""Quiver from Python with the client package (python/quiver, docs/python.md): create a
collection, bulk-upsert items from numpy arrays, add users and events, search with the
recommender operators, run plugins and read a neighbor list, count and scroll, snapshot, drop.
Errors are typed (quiver.errors.NotFound, InvalidArgument, ...).

  PYTHONPATH=build/python python3 examples/python/walkthrough.py [--port 7701] [--key KEY]

Uses (and drops) a collection named "python_example".
"""
import argparse

import numpy as np

import quiver
from quiver import errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7701, help="quiverd's binary protocol port")
    ap.add_argument("--key", default="")
    a = ap.parse_args()
    q = quiver.Client(a.host, a.port, api_key=a.key)
    name = "python_example"
    try:
        q.drop_collection(name)
    except errors.NotFound:
        pass

    rng = np.random.default_rng(7)
    n, dim = 500, 8
    q.create_collection(name, dim, metric="ip", clusters=4, topics=2,
                        index={"type": "hnsw", "m": 16, "ef_construction": 100})
    ids = np.arange(1, n + 1)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    alpha = 1 / (1 + np.exp(-vectors[:, 0]))
    print("upsert:", q.upsert(name, ids, vectors, clusters=ids % 4,
                              topics=np.stack([alpha, 1 - alpha], axis=1),
                              categories=(ids % 5).tolist(), tags=[[int(i % 3)] for i in ids],
                              timestamps=1_700_000_000 + ids * 60,
                              payloads=[{"title": f"item {i}"} for i in ids], chunk_size=200,
                              progress=lambda done, total: print(f"  {done}/{total}")))
    user_vec = rng.standard_normal(dim).astype(np.float32)
    q.put_users(name, [1, 2], np.stack([user_vec, rng.standard_normal(dim)]))
    q.add_events(name, [1] * 5 + [2] * 5, list(range(10, 15)) + list(range(12, 17)),
                 [1_700_100_000 + j for j in range(5)] * 2)

    def show(title, hits):
        print(f"{title}:", [(i, round(s, 3)) for i, s in hits])

    show("u2i", q.search(name, user_vec, k=5))
    show("multi-interest", q.search(name, vectors=[user_vec, vectors[0]], aggregate="max", k=5))
    show("quota", q.search(name, user_vec, quota={"p": "auto", "a": 0.5, "total": 8}))
    show("mvke", q.search(name, mvke={"user_vectors": [user_vec, vectors[1]]}, k=5))
    show("filter", q.search(name, user_vec, k=5, filter={"in": {"category": [1, 2]}}))
    seen = q.search(name, user_vec, k=3).ids
    unseen = q.search(name, user_vec, k=5, exclude=seen)
    assert not set(seen.tolist()) & set(unseen.ids.tolist()), "an excluded item came back"
    show("exclude", unseen)
    show("diversity", q.search(name, user_vec, k=5, rerank={"mmr": {"lambda": 0.5},
                                                             "max_consecutive_category": 1}))
    show("fresh", q.search(name, user_vec, k=5, fresh={
        "pool": "2h", "now": 1_700_000_000 + 500 * 60, "boost": 0.5, "half_life": "30m"}))
    batch = q.search_many(name, vectors[:3], k=3)
    print("search_many:", [r.ids.tolist() for r in batch])
    print("i2i_knn:", q.run_plugin(name, "i2i_knn", {"k": 10}))
    print("u2u_knn:", q.run_plugin(name, "u2u_knn", {"k": 1}))
    print("i2i list of item 10:", [(i, round(s, 3)) for i, s in q.get_list(name, "i2i", 10)[:5]])
    hits = q.search(name, k=5, payload=True, channels={"user": 1})
    print("channels:", list(zip(hits.ids.tolist(), hits.channels,
                                (p["title"] for p in hits.payloads))))
    print("count:", q.count(name), "in category 3:", q.count(name, {"eq": {"category": 3}}))
    items, cursor = q.scroll(name, 0, 2, vectors=False)
    print("scroll:", [(x["id"], x["payload"]["title"]) for x in items], "next", cursor)
    try:
        q.search(name, [1.0, 2.0], k=5)
    except errors.InvalidArgument as e:
        print("a wrong dimension is refused:", e.code, "-", e.message)
    q.snapshot(name)
    q.drop_collection(name)
    print("dropped:", name not in [c["schema"]["name"] for c in q.list_collections()])


if __name__ == "__main__":
    main()
