#!/usr/bin/python3
"""A synthetic ANN data set: a mixture of anisotropic Gaussian clusters, float32, from a fixed
seed (the "synth" set of docs/benchmarks.md). Needs python3-numpy only.

Model (defaults: 500,000 base vectors, 1,000 queries, d = 128, 1,000 clusters):
  cluster k: centre c_k ~ N(0, center_scale^2 I), weight from Dirichlet(5, ..., 5) (sizes vary
             by about +-45%), scale s_k ~ U(0.5, 1), a random rotation R_k (Haar, from the QR of
             a Gaussian matrix);
  shared spectrum lam_i = i^-spectrum_exp (i = 1..d), scaled to mean(lam^2) = 1: each cluster is
             an elongated Gaussian of low effective dimension, as learned embeddings are;
  a point:   x = c_k + s_k R_k (lam * z), z ~ N(0, I), k drawn by weight.
Queries come from the same mixture with another stream. With the defaults hnswlib at M 16
reaches recall@10 0.9-0.95 inside ef 10..500 and some true neighbours lie outside the query's
cluster, so neither graph nor inverted-list search is trivially exact.

With --normalize every base vector and query is scaled to unit length (a cosine / inner-product
set: ann_bench --metric ip).

Writes to OUT (default /tmp/synth): base.fvecs, query.fvecs, meta.txt, and with --truth K the
exact top-K (groundtruth.ivecs, groundtruth_dist.fvecs; ann_bench computes its own otherwise).

Usage: /usr/bin/python3 bench/data/gen_synth.py [OUT] [--n 500000] [--nq 1000] [--d 128]
         [--clusters 1000] [--seed 20240601] [--center-scale 0.3] [--spectrum-exp 0.75] [--truth K]
         [--normalize]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vecs import exact_l2_topk, write_vecs  # noqa: E402


class Mixture:
    def __init__(self, d, clusters, seed, center_scale, spectrum_exp):
        rng = np.random.default_rng(seed)
        self.centers = rng.standard_normal((clusters, d)) * center_scale
        self.weights = rng.dirichlet(np.full(clusters, 5.0))
        self.scales = rng.uniform(0.5, 1.0, clusters)
        lam = np.arange(1, d + 1, dtype=np.float64) ** -spectrum_exp
        self.lam = lam / np.sqrt((lam ** 2).mean())
        self.rotations = np.empty((clusters, d, d), dtype=np.float32)  # float32, as recorded runs used
        for k in range(clusters):
            q, r = np.linalg.qr(rng.standard_normal((d, d)))
            self.rotations[k] = q * np.sign(np.diag(r))  # sign fix: Haar-distributed

    def sample(self, n, seed):
        """n points and their cluster labels, drawn cluster by cluster (one matrix product each)."""
        rng = np.random.default_rng(seed)
        d = self.centers.shape[1]
        labels = rng.choice(len(self.weights), size=n, p=self.weights)
        z = rng.standard_normal((n, d)) * self.lam
        x = np.empty((n, d), dtype=np.float32)
        for k in np.unique(labels):
            rows = np.flatnonzero(labels == k)
            x[rows] = self.centers[k] + self.scales[k] * (z[rows] @ self.rotations[k].T.astype(np.float64))
        return x, labels


def main():
    ap = argparse.ArgumentParser(description="synthetic Gaussian-mixture ANN data set")
    ap.add_argument("out", nargs="?", default="/tmp/synth")
    ap.add_argument("--n", type=int, default=500000)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--center-scale", type=float, default=0.3)
    ap.add_argument("--spectrum-exp", type=float, default=0.75)
    ap.add_argument("--truth", type=int, default=0, help="also write the exact top-K (0: no)")
    ap.add_argument("--normalize", action="store_true", help="unit-length vectors (cosine / IP)")
    a = ap.parse_args()
    if a.n <= 0 or a.nq <= 0 or a.d <= 0 or a.clusters <= 0:
        ap.error("--n, --nq, --d and --clusters must be positive")
    if a.truth < 0 or a.truth > a.n:
        ap.error("--truth must be in 0..n")
    os.makedirs(a.out, exist_ok=True)
    t = time.time()
    mix = Mixture(a.d, a.clusters, a.seed, a.center_scale, a.spectrum_exp)
    base, base_labels = mix.sample(a.n, a.seed + 1000)
    queries, query_labels = mix.sample(a.nq, a.seed + 1)
    if a.normalize:  # on unit vectors L2 order is inner-product order: the truth below holds
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    print("generated base %s, queries %s in %.1f s" % (base.shape, queries.shape, time.time() - t))
    write_vecs(os.path.join(a.out, "base.fvecs"), base)
    write_vecs(os.path.join(a.out, "query.fvecs"), queries)
    meta = ("n=%d nq=%d d=%d clusters=%d seed=%d center_scale=%g spectrum_exp=%g normalize=%d\n" %
            (a.n, a.nq, a.d, a.clusters, a.seed, a.center_scale, a.spectrum_exp, a.normalize))
    if a.truth:
        t = time.time()
        ids, dists = exact_l2_topk(base, queries, a.truth)
        write_vecs(os.path.join(a.out, "groundtruth.ivecs"), ids)
        write_vecs(os.path.join(a.out, "groundtruth_dist.fvecs"), dists)
        k = min(10, a.truth)
        meta += ("ground truth top-%d in %.1f s; 1-NN in the query's own cluster: %.3f; "
                 "top-%d in own cluster: %.3f\n" % (
                     a.truth, time.time() - t, (base_labels[ids[:, 0]] == query_labels).mean(),
                     k, (base_labels[ids[:, :k]] == query_labels[:, None]).mean()))
    with open(os.path.join(a.out, "meta.txt"), "w") as f:
        f.write(meta)
    print(meta, end="")


if __name__ == "__main__":
    main()
