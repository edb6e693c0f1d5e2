#!/usr/bin/env python3
"""The Python client (python/quiver) against live quiverd processes it starts on free loopback
ports: every route, typed errors, deadlines, a frame over the server's limit, reconnecting after
the server's idle timeout and after a restart.

  client_test.py QUIVERD PYTHON_PACKAGE_DIR   (the build's python/ directory)
"""
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import numpy as np

QUIVERD = sys.argv[1] if len(sys.argv) > 1 else "build/tools/quiverd"
sys.path.insert(0, sys.argv[2] if len(sys.argv) > 2 else "build/python")
import quiver  # noqa: E402
from quiver import errors  # noqa: E402

WAIT = 300  # seconds: a bound on waiting for an event on a saturated machine, never a pace


class Server:
    """A quiverd on its own data directory; ports 0 pick free ones (read from its log)."""

    def __init__(self, data, *flags, http_port=0, binary_port=0):
        self.data, self.flags = data, flags
        self.log_path = data + ".log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [QUIVERD, "--data", data, "--http-port", str(http_port), "--binary-port",
                 str(binary_port), "--access-log", "false", "--snapshot-interval-s", "0", *flags],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT
        while True:
            with open(self.log_path) as log:
                text = log.read()
            m = re.search(r"REST http://[\d.]+:(\d+), binary [\d.]+:(\d+)", text)
            if m:
                self.http, self.binary = int(m.group(1)), int(m.group(2))
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("quiverd did not start:\n" + text)
            time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(WAIT)

    def refusals(self):
        """Binary requests refused RESOURCE_EXHAUSTED so far (from /metrics)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=WAIT).read()
        return sum(int(n) for n in re.findall(
            rb'protocol="binary",code="RESOURCE_EXHAUSTED"} (\d+)', text))


def until(condition, what):
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.server = Server(cls.dir + "/main", "--read-write-key", "rw", "--read-only-key", "ro")
        cls.client = quiver.Client("127.0.0.1", cls.server.binary, api_key="rw", deadline=WAIT)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def items(self, n, dim=8, seed=3):
        rng = np.random.default_rng(seed)
        return np.arange(1, n + 1, dtype=np.uint64), rng.standard_normal((n, dim)).astype(
            np.float32)

    def test_collections_items_count_and_scroll(self):
        c = self.client
        info = c.create_collection("items", 8, metric="l2", index={"type": "hnsw", "m": 8},
                                   clusters=3)
        self.assertEqual(info["schema"]["clusters"], 3)
        self.assertEqual(info["schema"]["index"]["m"], 8)
        with self.assertRaises(errors.AlreadyExists):
            c.create_collection("items", 8)
        ids, vecs = self.items(250)
        seen = []
        w = c.upsert("items", ids, vecs, clusters=ids % 3, categories=[int(i % 4) for i in ids],
                     tags=[[int(i % 5), 99] for i in ids], timestamps=ids * 10,
                     payloads=[{"title": f"t{i}"} for i in ids], chunk_size=100,
                     progress=lambda done, total: seen.append((done, total)))
        self.assertEqual(w["changed"], 250)
        self.assertEqual(seen, [(100, 250), (200, 250), (250, 250)])
        got = c.get("items", [7, 9999])
        self.assertIsNone(got[1])
        self.assertEqual(got[0]["id"], 7)
        np.testing.assert_array_equal(got[0]["vector"], vecs[6])
        self.assertEqual((got[0]["cluster"], got[0]["category"], got[0]["tags"],
                          got[0]["timestamp"], got[0]["payload"]),
                         (1, 3, [2, 99], 70, {"title": "t7"}))
        self.assertEqual(c.count("items"), 250)
        self.assertEqual(c.count("items", {"eq": {"category": 1}}),
                         sum(1 for i in ids if i % 4 == 1))
        self.assertEqual(c.describe_collection("items")["items"], 250)
        self.assertIn("items", [x["schema"]["name"] for x in c.list_collections()])
        # A scroll across writes: every item present throughout exactly once.
        first, cursor = c.scroll("items", 0, 100, vectors=False)
        self.assertEqual([x["id"] for x in first], list(range(1, 101)))
        self.assertEqual(len(first[0]["vector"]), 0)
        self.assertEqual(c.delete("items", [50, 200])["changed"], 2)
        rest = list(c.iter_items("items", page=60))
        after = [x["id"] for x in rest if x["id"] >= cursor]
        self.assertEqual(after, [i for i in range(cursor, 251) if i != 200])
        self.assertEqual(c.count("items"), 248)
        filtered = list(c.iter_items("items", filter={"range": {"timestamp": {"gte": 2400}}}))
        self.assertEqual([x["id"] for x in filtered], list(range(240, 251)))
        c.snapshot("items")
        c.drop_collection("items")
        with self.assertRaises(errors.NotFound):
            c.count("items")

    def test_search_operators_and_batches(self):
        c = self.client
        c.create_collection("s", 8, metric="ip", index={"type": "flat"}, clusters=2, topics=2)
        ids, vecs = self.items(120, seed=5)
        rng = np.random.default_rng(6)
        topics = rng.dirichlet([1, 1], 120).astype(np.float32)
        c.upsert("s", ids, vecs, clusters=ids % 2, topics=topics,
                 categories=[int(i % 3) for i in ids], timestamps=ids,
                 payloads=[{"n": int(i)} for i in ids])
        q = vecs[0]
        exact = np.argsort(-(vecs @ q), kind="stable")[:10] + 1
        r = c.search("s", q, k=10, payload=True)
        np.testing.assert_array_equal(r.ids, exact)
        self.assertEqual(r.ids.dtype, np.uint64)
        self.assertEqual(r.scores.dtype, np.float32)
        np.testing.assert_allclose(r.scores, np.sort(vecs @ q)[::-1][:10], rtol=1e-5)
        self.assertEqual([p["n"] for p in r.payloads], exact.tolist())
        self.assertEqual(r.cluster.tolist(), (exact % 2).tolist())
        # Every operator as a keyword, checked against its meaning.
        f = c.search("s", q, k=5, filter={"and": [{"eq": {"category": 1}},
                                                 {"not": {"in": {"id": [int(exact[0])]}}}]})
        self.assertTrue(all(i % 3 == 1 and i != exact[0] for i in f.ids.tolist()))
        e = c.search("s", q, k=5, exclude=exact[:3])
        self.assertFalse(set(e.ids.tolist()) & set(exact[:3].tolist()))
        fresh = c.search("s", q, k=5, fresh={"pool": 20, "now": 120})
        self.assertTrue(all(i >= 100 for i in fresh.ids.tolist()))
        quota = c.search("s", q, quota={"p": [0.5, 0.5], "total": 8})
        self.assertEqual(quota.quotas, [4, 4])
        self.assertEqual(sorted(quota.per_cluster), [4, 4])
        multi = c.search("s", vectors=vecs[:2], k=6, aggregate="max")
        both = vecs @ vecs[:2].T  # each item against each query vector
        best = both.max(axis=1)
        np.testing.assert_array_equal(multi.ids, np.argsort(-best, kind="stable")[:6] + 1)
        self.assertEqual(multi.vector.tolist(), both[multi.ids - 1].argmax(axis=1).tolist())
        mmr = c.search("s", q, k=5, rerank={"mmr": {"lambda": 0.3}})
        self.assertEqual(len(mmr), 5)
        mvke = c.search("s", k=5, mvke={"user_vectors": vecs[:2], "strategy": "rescore",
                                      "candidates": 120})
        scores = (topics[:, 0] * (vecs @ vecs[0]) + topics[:, 1] * (vecs @ vecs[1]))
        np.testing.assert_array_equal(mvke.ids, np.argsort(-scores, kind="stable")[:5] + 1)
        with self.assertRaises(errors.InvalidArgument):
            c.search("s", q, filter={"near": {"id": 1}})  # refused before sending
        with self.assertRaises(errors.InvalidArgument):
            c.search("s", q[:3])  # refused by the server
        # Many searches: pipelined and as one request, each as it is alone, errors in place.
        alone = [c.search("s", v, k=4) for v in vecs[:6]]
        many = c.search_many("s", vecs[:6], k=4)
        for a, b in zip(alone, many):
            np.testing.assert_array_equal(a.ids, b.ids)
        queries = [{"vector": vecs[0], "k": 3}, {"vector": [1.0, 2.0], "k": 3},
                   {"vector": vecs[1], "k": 3, "filter": {"eq": {"category": 2}}}]
        for pipelined in (True, False):
            out = c.search_batch("s", queries, pipelined=pipelined)
            np.testing.assert_array_equal(out[0].ids, alone[0].ids[:3])
            self.assertIsInstance(out[1], errors.InvalidArgument)
            self.assertTrue(all(i % 3 == 2 for i in out[2].ids.tolist()))
        c.drop_collection("s")

    def test_users_events_plugins_lists_versions(self):
        c = self.client
        c.create_collection("u", 8, metric="ip", index={"type": "flat"})
        ids, vecs = self.items(60, seed=8)
        c.upsert("u", ids, vecs)
        c.put_users("u", [1, 2], vecs[:2], [[(3, 100), (4, 90)], None])
        self.assertEqual(c.get_user("u", 1)["history"], [(3, 100), (4, 90)])
        np.testing.assert_array_equal(c.get_user("u", 1)["vector"], vecs[0])
        self.assertIsNone(c.get_user("u", 77))
        c.add_events("u", [1, 2], [5, 6], [110, 120])
        self.assertEqual(c.get_user("u", 1)["history"][0], (5, 110))
        self.assertEqual(c.get_user("u", 2)["history"], [(6, 120)])
        run = c.run_plugin("u", "i2i_knn", {"k": 5})
        self.assertEqual((run["kinds"], run["lists"]), (["i2i"], 60))
        lst = c.get_list("u", "i2i", 1)
        self.assertEqual(len(lst), 5)
        self.assertNotIn(1, [i for i, _ in lst])
        self.assertIsNone(c.get_list("u", "i2i", 999))
        self.assertEqual(c.list_lists("u")[0]["kind"], "i2i")
        self.assertIn("i2i_knn", c.list_plugins())
        channels = c.search("u", k=5, channels={"user": 1, "u2u2i": False,
                                                  "weights": {"u2i2i": 0.5}})
        self.assertTrue(all(set(ch) <= {"u2i", "u2i2i", "u2u2i"} for ch in channels.channels))
        self.assertEqual(c.health()["status"], "serving")
        versions = c.list_versions()
        self.assertEqual(versions["current"], "initial")
        with self.assertRaises(errors.NotFound):
            c.reload("no-such-version")
        with self.assertRaises(errors.FailedPrecondition):
            c.rollback()
        c.drop_collection("u")

    def test_keys_deadlines_and_errors(self):
        with quiver.Client("127.0.0.1", self.server.binary) as nokey:
            with self.assertRaises(errors.Unauthenticated):
                nokey.list_collections()
        with quiver.Client("127.0.0.1", self.server.binary, api_key="ro") as ro:
            ro.list_collections()
            with self.assertRaises(errors.PermissionDenied):
                ro.create_collection("nope", 2)
        with self.assertRaises(errors.DeadlineExceeded):
            self.client.health(timeout=1e-9)
        with self.assertRaises(errors.Unavailable):
            quiver.Client("127.0.0.1", 1, connect_timeout=WAIT)
        self.assertTrue(issubclass(errors.NotFound, quiver.QuiverError))
        self.assertEqual(errors.from_code(5, "x").code, "NOT_FOUND")


class ConnectionTest(unittest.TestCase):
    """A server with a short idle timeout and a small frame limit, restarted on its ports."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.flags = ("--idle-timeout-ms", "300", "--max-body-bytes", str(1 << 20))
        self.server = Server(self.dir + "/data", *self.flags)

    def tearDown(self):
        if self.server.proc.poll() is None:
            self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_reconnects_after_idle_close_and_restart_and_never_retries_an_oversized_frame(self):
        c = quiver.Client("127.0.0.1", self.server.binary, pool_size=1, deadline=WAIT)
        c.create_collection("r", 4, index={"type": "flat"})
        c.upsert("r", [1, 2], np.eye(2, 4, dtype=np.float32))
        # The server closes the idle pooled connection; the next call opens another.
        # A create is not retried once sent: it succeeds only if the dead connection is
        # replaced before the request is written.
        pooled = c._idle[0]
        until(pooled.closed_by_server, "the server's idle close")
        c.create_collection("r2", 4, index={"type": "flat"})
        self.assertIsNot(c._idle[0], pooled)
        self.assertEqual(c.count("r"), 2)
        # A frame over the limit: RESOURCE_EXHAUSTED naming it, at once, not retried.
        before = self.server.refusals()
        big = np.zeros((3, 4), np.float32)
        with self.assertRaises(errors.ResourceExhausted) as refused:
            c.upsert("r", [7, 8, 9], big, payloads=[{"blob": "x" * 600000}] * 3)
        self.assertIn("--max-body-bytes", refused.exception.message)
        self.assertEqual(self.server.refusals(), before + 1)
        # A restart on the same ports: the pooled connection is dead; the call goes through.
        http, binary = self.server.http, self.server.binary
        self.server.stop()
        with self.assertRaises(errors.Unavailable):
            c.count("r", timeout=1.0)
        self.server = Server(self.dir + "/data", *self.flags, http_port=http, binary_port=binary)
        self.assertEqual(c.count("r"), 2)
        c.close()


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
