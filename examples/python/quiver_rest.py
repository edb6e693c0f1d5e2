#!/usr/bin/env python3
"""Quiver's REST API from Python, standard library only (http.client, json).

A small client class and a walk-through against a running quiverd (docs/api.md has every route):
create a collection, upsert items, add users and events, search with the recommender operators,
run a plugin and read a neighbor list, snapshot, drop. Errors come back as QuiverError with the
server's code and message.

  python3 examples/python/quiver_rest.py [--host 127.0.0.1] [--port 7700] [--key KEY]

Uses (and drops) a collection named "python_example".
"""
import argparse
import http.client
import json
import math
import random


class QuiverError(Exception):
    """A failed request: HTTP status, Quiver's error code (e.g. NOT_FOUND) and message."""

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Quiver:
    """One keep-alive connection to quiverd's REST listener."""

    def __init__(self, host="127.0.0.1", port=7700, api_key=None, timeout=30):
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = "Bearer " + api_key

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body)
        try:
            self._conn.request(method, path, data, self._headers)
            resp = self._conn.getresponse()
            text = resp.read()
        except (ConnectionError, http.client.HTTPException):
            self._conn.close()  # reconnect on the next call
            raise
        answer = json.loads(text) if text else {}
        if resp.status != 200:
            err = answer.get("error", {})
            raise QuiverError(resp.status, err.get("code", "UNKNOWN"), err.get("message", text.decode(errors="replace")))
        return answer

    # Collections
    def create_collection(self, schema):
        return self.call("POST", "/v1/collections", schema)

    def drop_collection(self, name):
        return self.call("DELETE", f"/v1/collections/{name}")

    # Items, users, events
    def upsert(self, name, items):
        return self.call("POST", f"/v1/collections/{name}/items", {"items": items})

    def get(self, name, ids):
        return self.call("POST", f"/v1/collections/{name}/items/get", {"ids": ids})["items"]

    def put_users(self, name, users):
        return self.call("POST", f"/v1/collections/{name}/users", {"users": users})

    def add_events(self, name, events):
        return self.call("POST", f"/v1/collections/{name}/events", {"events": events})

    # Search: every operator is a field of the body (docs/queries.md)
    def search(self, name, **body):
        return self.call("POST", f"/v1/collections/{name}/search", body)["hits"]

    # Plugins and neighbor lists (docs/plugins.md)
    def run_plugin(self, name, plugin, config=None, incremental=False):
        return self.call("POST", f"/v1/collections/{name}/plugins/{plugin}/run",
                         {"config": config or {}, "incremental": incremental})

    def get_list(self, name, kind, key):
        return self.call("GET", f"/v1/collections/{name}/lists/{kind}/{key}")["list"]

    def snapshot(self, name):
        return self.call("POST", f"/v1/collections/{name}/snapshot")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7700)
    ap.add_argument("--key", default=None)
    a = ap.parse_args()
    q = Quiver(a.host, a.port, a.key)
    name = "python_example"
    try:
        q.drop_collection(name)
    except QuiverError as e:
        if e.code != "NOT_FOUND":
            raise

    rng = random.Random(7)
    dim, topics = 8, 2
    print(q.create_collection({"name": name, "dim": dim, "metric": "ip", "clusters": 4, "topics": topics,
                               "index": {"type": "hnsw", "m": 16, "ef_construction": 100}}))
    items = []
    for i in range(1, 501):
        v = [rng.gauss(0, 1) for _ in range(dim)]
        a0 = 1 / (1 + math.exp(-v[0]))
        items.append({"id": i, "vector": v, "cluster": i % 4, "topics": [a0, 1 - a0], "category": i % 5,
                      "tags": [i % 3], "timestamp": 1_700_000_000 + i * 60, "payload": {"title": f"item {i}"}})
    for at in range(0, len(items), 200):
        print("upsert:", q.upsert(name, items[at:at + 200]))
    user_vec = [rng.gauss(0, 1) for _ in range(dim)]
    q.put_users(name, [{"id": 1, "vector": user_vec, "history": []},
                       {"id": 2, "vector": [rng.gauss(0, 1) for _ in range(dim)], "history": []}])
    q.add_events(name, [{"user": 1, "item": 10 + j, "timestamp": 1_700_100_000 + j} for j in range(5)]
                 + [{"user": 2, "item": 12 + j, "timestamp": 1_700_100_000 + j} for j in range(5)])

    show = lambda title, hits: print(f"{title}:", [(h["id"], round(h["score"], 3)) for h in hits])
    show("u2i", q.search(name, vector=user_vec, k=5))
    show("multi-interest", q.search(name, vectors=[user_vec, items[0]["vector"]], aggregate="max", k=5))
    show("quota", q.search(name, vector=user_vec, quota={"p": "auto", "a": 0.5, "total": 8}))
    show("mvke", q.search(name, mvke={"user_vectors": [user_vec, items[1]["vector"]]}, k=5))
    show("filter", q.search(name, vector=user_vec, k=5, filter={"in": {"category": [1, 2]}}))
    seen = [h["id"] for h in q.search(name, vector=user_vec, k=3)]
    unseen = q.search(name, vector=user_vec, k=5, exclude=seen)
    assert not set(seen) & {h["id"] for h in unseen}, "an excluded item came back"
    show("exclude", unseen)
    show("diversity", q.search(name, vector=user_vec, k=5, rerank={"mmr": {"lambda": 0.5},
                                                                    "max_consecutive_category": 1}))
    show("fresh", q.search(name, vector=user_vec, k=5,
                           fresh={"pool": "2h", "now": 1_700_000_000 + 500 * 60, "boost": 0.5, "half_life": "30m"}))
    print("i2i_knn:", q.run_plugin(name, "i2i_knn", {"k": 10}))
    print("u2u_knn:", q.run_plugin(name, "u2u_knn", {"k": 1}))
    print("i2i list of item 10:", [(h["id"], round(h["score"], 3)) for h in q.get_list(name, "i2i", 10)[:5]])
    hits = q.search(name, k=5, payload=True, channels={"user": 1})
    print("channels:", [(h["id"], h["channels"], h["payload"]["title"]) for h in hits])
    try:
        q.search(name, vector=[1.0, 2.0], k=5)
    except QuiverError as e:
        print("a wrong dimension is refused:", e.code, "-", e.message)
    print("snapshot:", q.snapshot(name))
    print("drop:", q.drop_collection(name))


if __name__ == "__main__":
    main()
