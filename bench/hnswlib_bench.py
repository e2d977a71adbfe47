#!/usr/bin/python3
"""The same measurement as bench_search.c, through hnswlib (Debian's
python3-hnswlib, the reference HNSW implementation), on the same files:
build on --threads threads, then recall@10 against the exact ground truth
and queries per second on one thread at each ef. Prints one JSON object per
line: a "build" record, then one "search" record per ef.

    /usr/bin/python3 bench/hnswlib_bench.py --base B.fvecs --query Q.fvecs
        --gt GT.ivecs [--metric l2|cosine|ip] [--name NAME] [--threads 2]
        [--m 16] [--efc 200] [--queries N] [--efs 10,20,...,800]

QPS comes from one knn_query call per ef holding all queries, on one thread:
the loop runs in C++, so Python's per-call overhead does not count against
hnswlib. qps_cpu is the same from the thread's CPU time (time.thread_time),
which time slices lost to other processes on a shared machine do not
stretch. p50 / p99 come from a second pass of single-query calls over the
first 1,000 queries and therefore include that overhead (a few us).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import hnswlib
import numpy as np

EFS = [10, 20, 40, 80, 120, 200, 400, 800]
SPACE = {"l2": "l2", "cosine": "cosine", "ip": "ip"}
LATENCY_QUERIES = 1000


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)[:, 1:]
    return rows.view(dtype) if dtype != np.int32 else rows


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--metric", default="l2", choices=sorted(SPACE))
    ap.add_argument("--name", default="data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--efs", default=",".join(map(str, EFS)))
    a = ap.parse_args()
    base = np.ascontiguousarray(read_vecs(a.base, np.float32))
    queries = np.ascontiguousarray(read_vecs(a.query, np.float32)[: a.queries])
    gt = read_vecs(a.gt, np.int32)[: len(queries), :10]
    try:
        import importlib.metadata as md
        version = md.version("hnswlib")
    except Exception:
        version = "unknown"

    rss0 = rss_bytes()
    index = hnswlib.Index(space=SPACE[a.metric], dim=base.shape[1])
    t = time.perf_counter()
    index.init_index(max_elements=base.shape[0], M=a.m, ef_construction=a.efc, random_seed=100)
    index.add_items(base, np.arange(base.shape[0]), num_threads=a.threads)
    build = time.perf_counter() - t
    rss1 = rss_bytes()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "index.bin")
        index.save_index(path)
        index_bytes = os.path.getsize(path)
        index2 = hnswlib.Index(space=SPACE[a.metric], dim=base.shape[1])
        t = time.perf_counter()
        index2.load_index(path, max_elements=base.shape[0])
        open_ms = (time.perf_counter() - t) * 1e3
        del index2
    print(json.dumps({"dataset": a.name, "engine": "hnswlib", "kind": "build",
                      "version": version, "n": int(base.shape[0]), "dim": int(base.shape[1]),
                      "metric": a.metric, "m": a.m, "ef_construction": a.efc,
                      "threads": a.threads, "build_s": round(build, 3),
                      "index_bytes": index_bytes, "index_what": "save_index file",
                      "open_ms": round(open_ms, 2),
                      "memory_bytes": rss1 - rss0, "memory_what": "RSS growth over the build"}))
    sys.stdout.flush()
    index.set_num_threads(1)
    nl = min(LATENCY_QUERIES, len(queries))
    for ef in [int(e) for e in a.efs.split(",")]:
        index.set_ef(ef)
        t = time.perf_counter()
        c = time.thread_time()
        labels, _ = index.knn_query(queries, k=10, num_threads=1)
        dc = time.thread_time() - c
        dt = time.perf_counter() - t
        found = sum(len(set(labels[i].tolist()) & set(gt[i].tolist())) for i in range(len(queries)))
        lat = np.empty(nl)
        for q in range(nl):
            t = time.perf_counter()
            index.knn_query(queries[q:q + 1], k=10, num_threads=1)
            lat[q] = time.perf_counter() - t
        lat.sort()
        print(json.dumps({"dataset": a.name, "engine": "hnswlib", "kind": "search", "ef": ef,
                          "recall": round(found / (10 * len(queries)), 4),
                          "qps": round(len(queries) / dt, 1),
                          "qps_cpu": round(len(queries) / dc, 1) if dc > 0 else 0,
                          "p50_us": round(lat[nl // 2] * 1e6, 1),
                          "p99_us": round(lat[int((nl - 1) * 0.99)] * 1e6, 1),
                          "queries": len(queries), "latency_queries": nl}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
