#!/usr/bin/python3
"""Helpers of bench/pg_bench.sh (the SQL benchmark of the PostgreSQL
extension): data in and out of psql, scoring and the Markdown report.

  pg_bench.py copy VECS [--count N]
      a .fvecs file as COPY text rows "id<TAB>[x,...]", ids 0.. (the row
      numbers the ground truth uses)
  pg_bench.py queries VECS FIRST COUNT
      psql lines "EXECUTE q('[x,...]');" for query rows FIRST..FIRST+COUNT-1
  pg_bench.py score RESULTS TIMES GT FIRST LOOP_S
      recall@10 of RESULTS (one line per query: the returned ids, comma
      separated, in query order from row FIRST of the .ivecs ground truth
      GT), per-query latencies from TIMES (psql's "Time: X ms" lines), and
      queries per second over LOOP_S seconds of the whole loop; one JSON
      object on standard output
  pg_bench.py report RESULTS.jsonl OUT.md [--library LIB.jsonl]
      the Markdown tables of the run (and, when LIB.jsonl holds results of
      bench_search on the same data sets, the library's own figures)
"""
import argparse
import json
import os
import sys
import time

import numpy as np

K = 10


def read_vecs(path, dtype, count=None, first=0):
    with open(path, "rb") as f:
        dim = int(np.frombuffer(f.read(4), dtype="<i4")[0])
    row = 4 + 4 * dim
    total = os.path.getsize(path) // row
    if count is None:
        count = total - first
    if first + count > total:
        sys.exit(f"pg_bench.py: {path} has {total} vectors, not {first + count}")
    m = np.memmap(path, dtype="<i4", mode="r", offset=first * row, shape=(count, dim + 1))
    if not np.all(m[:, 0] == dim):
        sys.exit(f"pg_bench.py: {path}: rows of different dimensions")
    return np.asarray(m[:, 1:]).view(dtype)


def vec_text(v):
    # Integral data (Fashion-MNIST's pixels) as integers, the rest with
    # enough digits to come back as the same float32.
    if np.all(v == np.round(v)):
        return "[" + ",".join(map(str, v.astype(np.int64).tolist())) + "]"
    return "[" + ",".join("%.9g" % x for x in v.tolist()) + "]"


def cmd_copy(a):
    m = read_vecs(a.vecs, "<f4", a.count)
    out = sys.stdout
    for i, v in enumerate(m):
        out.write(f"{i}\t{vec_text(v)}\n")


def cmd_queries(a):
    m = read_vecs(a.vecs, "<f4", a.count, a.first)
    for v in m:
        sys.stdout.write(f"EXECUTE q('{vec_text(v)}');\n")


def cmd_score(a):
    with open(a.results) as f:
        rows = [line.rstrip("\n") for line in f]
    gt = read_vecs(a.gt, "<i4", len(rows), a.first)
    hits = 0
    short = 0
    for i, line in enumerate(rows):
        got = [int(x) for x in line.split(",") if x != ""]
        if len(got) < K:
            short += 1
        hits += len(set(got[:K]) & set(gt[i, :K].tolist()))
    times = []
    with open(a.times) as f:
        for line in f:
            if line.startswith("Time: "):
                times.append(float(line.split()[1]))
    if len(times) != len(rows):
        sys.exit(f"pg_bench.py: {len(rows)} results but {len(times)} timings")
    t = np.array(times)
    json.dump({
        "queries": len(rows),
        "recall": round(hits / (K * len(rows)), 4),
        "short": short,
        "qps": round(len(rows) / a.loop_s, 1),
        "p50_ms": round(float(np.percentile(t, 50)), 3),
        "p99_ms": round(float(np.percentile(t, 99)), 3),
    }, sys.stdout)
    sys.stdout.write("\n")


def load_jsonl(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def library_run(lib, ds):
    """The last bench_search run of the library on data set ds: its build
    record and the search records (with an ef) written before it."""
    build, searches, pending = None, [], []
    for r in lib:
        if r.get("dataset") != ds or r.get("engine") != "ruvector":
            continue
        if r.get("kind") == "search" and "ef" in r:
            pending.append(r)
        elif r.get("kind") == "build":
            build, searches, pending = r, pending, []
    return build, searches


def fmt(x, spec):
    return "" if x is None else format(x, spec)


def cmd_report(a):
    rows = load_jsonl(a.results)
    meta = next((r for r in rows if r.get("kind") == "meta"), {})
    lib = load_jsonl(a.library) if a.library and os.path.exists(a.library) else []
    if lib:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(a.library)))
        lib_name = f"`data/{os.path.basename(a.library)}` of `make bench`, written {when}"
    out = []
    w = out.append
    w("# ruvector in PostgreSQL: SQL benchmark")
    w("")
    w("Produced by `bash bench/pg_bench.sh` (bench/pg_bench.py writes this file); "
      "the numbers below are from one run of it.")
    w("")
    w(f"- {meta.get('server', 'PostgreSQL')}, ruvector extension {meta.get('extversion', '?')}, "
      f"on {meta.get('cpu', '?')} ({meta.get('cores', '?')} cores shared with other work; "
      f"load average {meta.get('load_start', '?')} at the start, {meta.get('load_end', '?')} at the end), "
      f"{meta.get('date', '')}.")
    w(f"- A throwaway cluster: shared_buffers {meta.get('shared_buffers', '?')}, fsync off, "
      "no parallel workers, JIT off; the table and its index were read once before the timed loops.")
    w("- One connection over TCP to 127.0.0.1 through psql; each query is a prepared statement, "
      "`EXECUTE q('[...]')` of `SELECT string_agg(id::text, ',') FROM (SELECT id FROM t ORDER BY v <-> $1 LIMIT 10) s` "
      "(`<=>` on the cosine set), the query vector sent as text. QPS is the number of queries over "
      "the loop's wall time measured by the server (clock_timestamp() before and after the loop, in "
      "the same session); p50 / p99 are psql's `\\timing` per statement, so they include the round trip "
      "and parsing the vector. A warm-up of 50 queries runs first, untimed.")
    w("- Index scans run with enable_seqscan off (the plan of every loop is checked to be an index scan); "
      "the build tables also say which scan the planner picks by itself for the same query. "
      "The exact rows scan the whole table (enable_indexscan off), on fewer queries.")
    w("- ruhnsw is built with pgvector's defaults (m 16, ef_construction 64), ruivfflat with lists near "
      "the square root of the rows; both by one backend (no parallel build).")
    w("- recall@10: the fraction of the true 10 nearest (the exact ground truth of scripts/data.sh, "
      "which bench_search uses too) among the 10 returned ids.")
    w("- The machine's cores are shared: a p99 of several milliseconds is a time slice lost to another "
      "process, and QPS that does not fall as ef_search or probes grow is the neighbours' doing. "
      "Recall and p50 hold from run to run; compare QPS only between runs at a similar load.")
    w("")
    sets = []
    for r in rows:
        if r.get("kind") in ("build", "search") and r["dataset"] not in sets:
            sets.append(r["dataset"])
    for ds in sets:
        info = next((r for r in rows if r.get("kind") == "dataset" and r["dataset"] == ds), {})
        w(f"## {ds}")
        w("")
        if info:
            w(f"{info.get('n')} rows of {info.get('dim')} dimensions ({info.get('metric')}), "
              f"{info.get('queries')} queries; table {fmt(info.get('table_mib'), '.1f')} MiB with its TOAST, "
              f"loaded with COPY in {fmt(info.get('load_s'), '.1f')} s. {info.get('note', '')}".rstrip())
            w("")
        w("| index | build (s) | index size (MiB) | plan with default settings |")
        w("|---|---:|---:|---|")
        for r in rows:
            if r.get("kind") == "build" and r["dataset"] == ds:
                if r.get("error"):
                    w(f"| {r['index']} | {r['error']} | | |")
                    continue
                am = r["index"].split()[0]
                plan = next((p["scan"] for p in rows if p.get("kind") == "planner"
                             and p["dataset"] == ds and p["index"] == am), "")
                w(f"| {r['index']} | {r['build_s']:.1f} | {r['bytes'] / 2**20:.1f} | {plan} |")
        w("")
        w("| method | setting | queries | recall@10 | QPS | p50 (ms) | p99 (ms) |")
        w("|---|---|---:|---:|---:|---:|---:|")
        for r in rows:
            if r.get("kind") == "search" and r["dataset"] == ds:
                note = f" ({r['short']} queries got fewer than 10 rows)" if r.get("short") else ""
                w(f"| {r['method']} | {r['setting']} | {r['queries']} | {r['recall']:.4f}{note} | "
                  f"{r['qps']:.1f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |")
        build, searches = library_run(lib, ds)
        if build and searches:
            w("")
            w(f"The library itself on the same data ({lib_name}, an earlier run: "
              f"bench_search, m = {build.get('m')}, ef_construction = {build.get('ef_construction')}, "
              f"build {build.get('build_s', 0):.1f} s on {build.get('threads')} threads, "
              f"in-process calls, no SQL):")
            w("")
            w("| ef | queries | recall@10 | QPS | p50 (ms) | p99 (ms) |")
            w("|---:|---:|---:|---:|---:|---:|")
            for r in searches:
                w(f"| {r['ef']} | {r.get('queries')} | {r['recall']:.4f} | {r['qps']:.1f} | "
                  f"{r.get('p50_us', 0) / 1000:.3f} | {r.get('p99_us', 0) / 1000:.3f} |")
            sql = {r["setting"]: r for r in rows if r.get("kind") == "search" and r["dataset"] == ds
                   and r["method"] == "ruhnsw"}
            pairs = [(lr, sql.get(f"ef_search {lr['ef']}")) for lr in searches]
            pairs = [(lr, sr) for lr, sr in pairs if sr]
            if pairs:
                w("")
                w("At the same ef through SQL (the graphs differ: ef_construction 64 here, "
              f"{build.get('ef_construction')} in the library run): " + "; ".join(
                    f"ef {lr['ef']}: {sr['qps'] / lr['qps']:.0%} of the library's QPS "
                    f"(recall {sr['recall']:.4f} vs {lr['recall']:.4f})" for lr, sr in pairs) + ".")
        w("")
    text = "\n".join(out)
    with open(a.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("copy")
    c.add_argument("vecs")
    c.add_argument("--count", type=int)
    q = sub.add_parser("queries")
    q.add_argument("vecs")
    q.add_argument("first", type=int)
    q.add_argument("count", type=int)
    s = sub.add_parser("score")
    s.add_argument("results")
    s.add_argument("times")
    s.add_argument("gt")
    s.add_argument("first", type=int)
    s.add_argument("loop_s", type=float)
    r = sub.add_parser("report")
    r.add_argument("results")
    r.add_argument("out")
    r.add_argument("--library")
    a = p.parse_args()
    {"copy": cmd_copy, "queries": cmd_queries, "score": cmd_score, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
