#!/usr/bin/env python3
"""faiss-cpu k-means on a float32 .npy matrix, timed like `dnc bench kmeans`.

Prints one JSON line: {"seconds": ..., "train_seconds": ..., "inertia": ..., "k": ..., ...}.
`seconds` is the training plus the assignment of every point to the final centroids, the output
`dnc_cluster::fit` returns (faiss's `train` returns the centroids only); `train_seconds` is the
training alone. Used by `cargo xtask bench kmeans --vs-torch`, which writes the data file from
Rust so both libraries cluster the same points.
"""

import argparse
import json
import time

import faiss
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help=".npy file, float32 [N, D]")
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    faiss.omp_set_num_threads(args.threads)
    x = np.ascontiguousarray(np.load(args.data), dtype=np.float32)
    n, d = x.shape
    # max_points_per_centroid large: cluster all N points, as dnc does (no subsampling).
    km = faiss.Kmeans(d, args.k, niter=args.iters, seed=args.seed, verbose=False,
                      max_points_per_centroid=n)
    t0 = time.perf_counter()
    km.train(x)
    train_seconds = time.perf_counter() - t0
    _, assign = km.index.search(x, 1)
    seconds = time.perf_counter() - t0
    inertia = float(((x - km.centroids[assign[:, 0]]) ** 2).sum())
    print(json.dumps({"seconds": round(seconds, 4), "train_seconds": round(train_seconds, 4),
                      "inertia": inertia, "k": args.k, "n": n,
                      "d": d, "iters": args.iters, "threads": args.threads,
                      "faiss_simd_level": int(faiss.SIMDConfig.get_level())}))


if __name__ == "__main__":
    main()
