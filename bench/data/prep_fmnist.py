#!/usr/bin/python3
"""Fashion-MNIST from Debian's dataset-fashion-mnist as .fvecs/.ivecs files, the layout
ann-benchmarks' fashion-mnist-784-euclidean uses (raw 0..255 pixels, no normalisation):

  base.fvecs              60000 x 784 float32  (train images)
  query.fvecs             10000 x 784 float32  (test images)
  groundtruth.ivecs       10000 x 100 int32    (exact L2 top-100 ids into base, closest first)
  groundtruth_dist.fvecs  10000 x 100 float32  (their squared L2 distances)

ann_bench reads the dataset package directly (--dataset fashion-mnist) and computes its own
ground truth; these files are for other tools and for cross-checking that ground truth (it is
exact in float64 here: pixel values are small integers). Needs python3-numpy only.

Usage: /usr/bin/python3 bench/data/prep_fmnist.py [OUT_DIR]   (default /tmp/fmnist)
"""
import gzip
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vecs import exact_l2_topk, read_vecs, write_vecs  # noqa: E402

SOURCE = "/usr/share/datasets/fashion-mnist"


def read_images(path):
    """An IDX3 image file (magic 2051, big-endian counts) as an n x (rows*cols) uint8 array."""
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 2051:
            raise ValueError("%s: not an IDX3 image file (magic %#x)" % (path, magic))
        data = f.read(n * rows * cols)
    if len(data) != n * rows * cols:
        raise ValueError("%s: truncated (%d of %d bytes)" % (path, len(data), n * rows * cols))
    return np.frombuffer(data, dtype=np.uint8).reshape(n, rows * cols)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/fmnist"
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        if not os.path.exists(os.path.join(SOURCE, name)):
            sys.exit("prep_fmnist: %s/%s is missing: apt-get install dataset-fashion-mnist" % (SOURCE, name))
    os.makedirs(out, exist_ok=True)
    base = read_images(os.path.join(SOURCE, "train-images-idx3-ubyte.gz")).astype(np.float32)
    query = read_images(os.path.join(SOURCE, "t10k-images-idx3-ubyte.gz")).astype(np.float32)
    print("base %s, queries %s" % (base.shape, query.shape))
    write_vecs(os.path.join(out, "base.fvecs"), base)
    write_vecs(os.path.join(out, "query.fvecs"), query)
    t = time.time()
    ids, dists = exact_l2_topk(base, query, 100)
    print("ground truth (top-100, float64) in %.1f s" % (time.time() - t))
    write_vecs(os.path.join(out, "groundtruth.ivecs"), ids)
    write_vecs(os.path.join(out, "groundtruth_dist.fvecs"), dists)
    if not np.array_equal(read_vecs(os.path.join(out, "query.fvecs")), query):
        sys.exit("prep_fmnist: query.fvecs does not read back")
    print("wrote", out, sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
