"""The .fvecs / .ivecs formats (each vector: int32 dimension, then that many 4-byte values) and
an exact L2 top-k in numpy, shared by the data scripts beside this file."""
import numpy as np


def write_vecs(path, arr):
    """Writes a 2-d float32 or int32 array as .fvecs / .ivecs."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.itemsize != 4 or arr.ndim != 2:
        raise ValueError("write_vecs: need a 2-d array of 4-byte values, got %s %s" % (arr.dtype, arr.shape))
    n, d = arr.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = arr.view(np.int32)
    out.tofile(path)


def read_vecs(path, dtype=np.float32):
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        raise ValueError("%s: empty" % path)
    d = int(raw[0])
    if d <= 0 or raw.size % (d + 1) != 0:
        raise ValueError("%s: not a .fvecs/.ivecs file (dimension %d, %d words)" % (path, d, raw.size))
    rows = raw.reshape(-1, d + 1)
    if not (rows[:, 0] == d).all():
        raise ValueError("%s: vectors of different dimensions" % path)
    return rows[:, 1:].copy().view(dtype)


def exact_l2_topk(base, queries, k, block=256):
    if not 0 < k <= len(base):
        raise ValueError("exact_l2_topk: k must be in 1..%d, got %d" % (len(base), k))
    """Exact squared-L2 top-k ids and distances (closest first), in float64, blocked over queries
    so memory stays at block x len(base) doubles (ties at rank k in any order)."""
    base64 = base.astype(np.float64)
    norms = (base64 ** 2).sum(1)
    ids = np.empty((len(queries), k), dtype=np.int32)
    dists = np.empty((len(queries), k), dtype=np.float32)
    for s in range(0, len(queries), block):
        q = queries[s:s + block].astype(np.float64)
        d2 = norms[None, :] - 2.0 * (q @ base64.T) + (q ** 2).sum(1)[:, None]
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        rows = np.arange(len(q))[:, None]
        order = np.argsort(d2[rows, part], axis=1, kind="stable")
        ids[s:s + len(q)] = part[rows, order]
        dists[s:s + len(q)] = d2[rows, part[rows, order]]
    return ids, dists
