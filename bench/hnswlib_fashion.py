#!/usr/bin/python3
"""The same measurement as bench_search.c, through hnswlib (Debian's
python3-hnswlib, the reference HNSW implementation), on the same files:
build on --threads threads, then recall@10 against the exact ground truth
and queries per second on one thread at each ef. Prints a Markdown table.

    /usr/bin/python3 bench/hnswlib_fashion.py [--data data] [--threads 2]
"""
import argparse
import sys
import time

import hnswlib
import numpy as np

EFS = [10, 20, 40, 80, 120, 200, 400, 800]


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)[:, 1:]
    return rows.view(dtype) if dtype != np.int32 else rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--queries", type=int, default=10000)
    a = ap.parse_args()
    base = np.ascontiguousarray(read_vecs(f"{a.data}/fashion-mnist-train.fvecs", np.float32))
    queries = np.ascontiguousarray(read_vecs(f"{a.data}/fashion-mnist-test.fvecs", np.float32))[: a.queries]
    gt = read_vecs(f"{a.data}/fashion-mnist-gt100.ivecs", np.int32)[: a.queries, :10]

    index = hnswlib.Index(space="l2", dim=base.shape[1])
    t = time.perf_counter()
    index.init_index(max_elements=base.shape[0], M=a.m, ef_construction=a.efc, random_seed=100)
    index.add_items(base, np.arange(base.shape[0]), num_threads=a.threads)
    build = time.perf_counter() - t
    print(f"| build ({a.threads} threads) | {build:.2f} s |")
    index.set_num_threads(1)
    print("| ef | recall@10 | QPS (1 thread) |")
    print("|---:|---:|---:|")
    for ef in EFS:
        index.set_ef(ef)
        # All queries in one call on one thread: the loop runs in C++, so
        # Python's per-call overhead does not count against hnswlib.
        t = time.perf_counter()
        labels, _ = index.knn_query(queries, k=10, num_threads=1)
        dt = time.perf_counter() - t
        found = sum(len(set(labels[i].tolist()) & set(gt[i].tolist())) for i in range(len(queries)))
        print(f"| {ef} | {found / (10 * len(queries)):.4f} | {len(queries) / dt:.0f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
