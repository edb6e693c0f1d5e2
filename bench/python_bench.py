#!/usr/bin/env python3
"""Search throughput from Python (python/quiver) beside the C++ client (bench/client_bench),
against one quiverd this script starts, on the same queries, in the same run.

A synthetic collection (--items vectors of --dim, Gaussian mixture, HNSW M 16 ef 64, inner
product) is loaded through the Python client; then, in interleaved passes (Python, C++, Python,
C++, ...), each client runs:
  single: one search per call, k --k, waiting for each answer;
  batch:  --batch searches per call, pipelined on one connection (Python search_many, C++
          CallMany), the server answering them on both its threads.
Reported: QPS per client and mode (median over the passes), the ratio Python / C++, and the
client process's CPU seconds per 1,000 searches.

  python_bench.py --build build [--items 100000] [--dim 64] [--k 100] [--batch 100]
                  [--seconds 5] [--passes 3] [--out bench/results/python.md]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
from vecs import write_vecs  # noqa: E402  (bench/data/vecs.py)


def start_server(quiverd, data):
    log = open(data + ".log", "w")
    proc = subprocess.Popen([quiverd, "--data", data, "--http-port", "0", "--binary-port", "0",
                             "--access-log", "false", "--snapshot-interval-s", "0"],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with open(data + ".log") as f:
            m = re.search(r"binary [\d.]+:(\d+)", f.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit("quiverd did not start: " + open(data + ".log").read())


def python_pass(client, collection, queries, mode, k, batch, seconds):
    done, i = 0, 0
    cpu0, start = time.process_time(), time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        if mode == "single":
            client.search(collection, queries[i % len(queries)], k=k)
            done += 1
            i += 1
        else:
            rows = np.take(queries, range(i, i + batch), axis=0, mode="wrap")
            for r in client.search_many(collection, rows, k=k):
                if not hasattr(r, "ids"):
                    raise r
            done += batch
            i += batch
    took = time.monotonic() - start
    return {"qps": done / took, "cpu_per_1000": 1000 * (time.process_time() - cpu0) / done}


def cpp_pass(binary, port, collection, queries_path, mode, k, batch, seconds):
    out = subprocess.run([binary, "--port", str(port), "--collection", collection, "--queries",
                          queries_path, "--k", str(k), "--batch", str(batch), "--seconds",
                          str(seconds), "--mode", mode], check=True, capture_output=True,
                         text=True).stdout
    r = json.loads(out)
    return {"qps": r["qps"], "cpu_per_1000": 1000 * r["cpu_seconds"] / r["queries"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.build, "python"))
    import quiver

    tmp = tempfile.mkdtemp()
    proc, port = start_server(os.path.join(a.build, "tools", "quiverd"), tmp + "/data")
    try:
        rng = np.random.default_rng(7)
        centres = rng.standard_normal((64, a.dim)).astype(np.float32)
        base = centres[rng.integers(0, 64, a.items)] + 0.5 * rng.standard_normal(
            (a.items, a.dim)).astype(np.float32)
        queries = centres[rng.integers(0, 64, 2000)] + 0.5 * rng.standard_normal(
            (2000, a.dim)).astype(np.float32)
        queries_path = tmp + "/queries.fvecs"
        write_vecs(queries_path, queries)
        client = quiver.Client("127.0.0.1", port, deadline=600)
        client.create_collection("bench", a.dim, metric="ip",
                                 index={"type": "hnsw", "m": 16, "ef_construction": 100,
                                        "ef_search": 64})
        t0 = time.monotonic()
        client.upsert("bench", np.arange(1, a.items + 1), base)
        load = time.monotonic() - t0
        cpp = os.path.join(a.build, "bench", "client_bench")
        results = {}
        for p in range(a.passes):
            for mode in ("single", "batch"):
                for name in ("python", "c++"):
                    r = python_pass(client, "bench", queries, mode, a.k, a.batch, a.seconds) \
                        if name == "python" else \
                        cpp_pass(cpp, port, "bench", queries_path, mode, a.k, a.batch, a.seconds)
                    results.setdefault((name, mode), []).append(r)
                    print(f"pass {p + 1} {name:6} {mode:6} {r['qps']:9.1f} QPS, "
                          f"client CPU {r['cpu_per_1000']:.3f} s per 1,000", flush=True)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(name, mode, key):
        return statistics.median(r[key] for r in results[(name, mode)])
    lines = [
        "# Python client beside the C++ client",
        "",
        f"Command: `/usr/bin/python3 bench/python_bench.py --build {a.build} --items {a.items} "
        f"--dim {a.dim} --k {a.k} --batch {a.batch} --seconds {a.seconds:g} --passes "
        f"{a.passes}`",
        "",
        f"One quiverd on this machine (2 cores shared by the server and the client), "
        f"{a.items:,} items of dim {a.dim} (Gaussian mixture, inner product, HNSW M 16, "
        f"ef_search 64), k {a.k}, 2,000 queries cycled; one client thread; the Python and C++ "
        f"clients alternate, {a.passes} passes of {a.seconds:g} s each, medians. Loading the "
        f"items through the Python client took {load:.1f} s ({a.items / load:,.0f} items/s).",
        "",
        "| mode | Python QPS | C++ QPS | Python / C++ | per pass | client CPU s per 1,000 "
        "searches (Python, C++) |",
        "|---|---|---|---|---|---|",
    ]
    for mode, label in (("single", "single (one search per call)"),
                        ("batch", f"batch ({a.batch} pipelined per call)")):
        py, cc = med("python", mode, "qps"), med("c++", mode, "qps")
        # Each pass's Python run beside the C++ run right after it: the pair saw the same load.
        per_pass = ", ".join(f"{p['qps'] / c['qps']:.2f}" for p, c in
                             zip(results[("python", mode)], results[("c++", mode)]))
        lines.append(f"| {label} | {py:,.0f} | {cc:,.0f} | {py / cc:.2f} | {per_pass} | "
                     f"{med('python', mode, 'cpu_per_1000'):.3f}, "
                     f"{med('c++', mode, 'cpu_per_1000'):.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
