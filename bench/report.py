#!/usr/bin/python3
"""Turn the benchmark's JSON lines (bench_search --json, hnswlib_bench.py,
peers.mjs) into Markdown tables: per data set one table of builds and one
of searches, and the QPS of each engine, relative to hnswlib's, at recall@10
0.95 and 0.99.

    report.py RESULTS.jsonl DATASETS.tsv > tables.md

DATASETS.tsv: one data set per line, name<TAB>description, in report order.

QPS at a recall target: on each engine's curve of (recall, QPS) over the ef
sweep, the first ef whose recall reaches the target; when the ef before it
falls short, QPS is interpolated linearly in recall between the two (so an
engine whose sweep jumps past the target is not charged for the whole step).
When the first ef already reaches it, its QPS is taken as is (the true
figure is at least that). "not reached" when no ef in the sweep reaches it.

After the per-set tables, when there are data sets named rand-*, a scaling
table: per engine and size, build time per vector and recall / QPS at a few
fixed ef, to show how cost grows with n.
"""
import json
import sys

TARGETS = (0.95, 0.99)
ORDER = ["ruvector", "hnswlib", "hnswlib-node", "usearch", "ruvector-core"]


def mib(b):
    return f"{b / 2**20:.1f} MiB"


def qps_at(rows, target):
    """(qps, how) or None."""
    prev = None
    for r in rows:
        if r["recall"] >= target:
            if prev is None or prev["recall"] >= r["recall"]:
                return r["qps"], f"ef {r['ef']}"
            f = (target - prev["recall"]) / (r["recall"] - prev["recall"])
            return prev["qps"] + f * (r["qps"] - prev["qps"]), f"ef {prev['ef']}-{r['ef']}"
        prev = r
    return None


def main():
    recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
    sets = [line.rstrip("\n").split("\t", 1) for line in open(sys.argv[2]) if line.strip()]
    out = []
    for name, desc in sets:
        mine = [r for r in recs if r.get("dataset") == name]
        engines = sorted({r["engine"] for r in mine},
                         key=lambda e: ORDER.index(e) if e in ORDER else len(ORDER))
        out.append(f"## {name}\n\n{desc}\n")
        out.append("| engine | version | build | build threads | index size | open | memory | note |")
        out.append("|---|---|---:|---:|---:|---:|---:|---|")
        for e in engines:
            err = [r for r in mine if r["engine"] == e and r["kind"] == "error"]
            b = [r for r in mine if r["engine"] == e and r["kind"] == "build"]
            if err and not b:
                out.append(f"| {e} | | failed | | | | | {err[0]['error']} |")
                continue
            if not b:
                out.append(f"| {e} | | no result | | | | | |")
                continue
            b = b[0]
            note = b.get("settings", "")
            if err:
                note = (note + "; " if note else "") + "failed: " + err[0]["error"]
            per = b["build_s"] * 1e6 / b["n"]
            openms = f"{b['open_ms']:.1f} ms" if "open_ms" in b else "n/a"
            out.append(f"| {e} | {b.get('version', '')} | {b['build_s']:.2f} s ({per:.0f} us/vector) "
                       f"| {b['threads']} | {mib(b['index_bytes'])} ({b['index_what']}) | {openms} "
                       f"| {mib(b['memory_bytes'])} ({b['memory_what']}) | {note} |")
        out.append("")
        out.append("| engine | ef | recall@10 | QPS (1 thread) | p50 (us) | p99 (us) | queries |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        curves = {}
        for e in engines:
            rows = sorted([r for r in mine if r["engine"] == e and r["kind"] == "search"],
                          key=lambda r: r["ef"])
            curves[e] = rows
            if not rows:
                out.append(f"| {e} | | no search results | | | | |")
            for r in rows:
                out.append(f"| {e} | {r['ef']} | {r['recall']:.4f} | {r['qps']:.0f} | "
                           f"{r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['queries']} |")
        out.append("")
        out.append("| engine | " + " | ".join(f"QPS at recall {t}" for t in TARGETS) + " | "
                   + " | ".join(f"x hnswlib at {t}" for t in TARGETS) + " |")
        out.append("|---|" + "---:|" * (2 * len(TARGETS)))
        ref = {t: qps_at(curves.get("hnswlib", []), t) for t in TARGETS}
        for e in engines:
            cells, ratios = [], []
            for t in TARGETS:
                q = qps_at(curves[e], t)
                cells.append(f"{q[0]:.0f} ({q[1]})" if q else "not reached")
                ratios.append(f"{q[0] / ref[t][0]:.2f}" if q and ref[t] else "n/a")
            out.append(f"| {e} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        out.append("")
    scaling(out, recs, [n for n, _ in sets if n.startswith("rand-")])
    print("\n".join(out))


SCALE_EFS = (40, 200, 800, 3200)


def scaling(out, recs, names):
    if not names:
        return
    out.append("## Scaling (uniform random, 128-d, L2)\n")
    out.append("recall@10 / QPS (1 thread) at fixed ef as the base grows.\n")
    out.append("| engine | n | build (us/vector) | "
               + " | ".join(f"ef {e}: recall / QPS" for e in SCALE_EFS) + " |")
    out.append("|---|---:|---:|" + "---:|" * len(SCALE_EFS))
    engines = sorted({r["engine"] for r in recs if r.get("dataset") in names},
                     key=lambda e: ORDER.index(e) if e in ORDER else len(ORDER))
    for e in engines:
        for name in names:
            b = [r for r in recs if r.get("dataset") == name and r["engine"] == e
                 and r["kind"] == "build"]
            if not b:
                out.append(f"| {e} | {name} | failed | " + " | ".join("" for _ in SCALE_EFS) + " |")
                continue
            b = b[0]
            cells = []
            for ef in SCALE_EFS:
                r = [r for r in recs if r.get("dataset") == name and r["engine"] == e
                     and r["kind"] == "search" and r["ef"] == ef]
                cells.append(f"{r[0]['recall']:.3f} / {r[0]['qps']:.0f}" if r else "")
            out.append(f"| {e} | {b['n']:,} | {b['build_s'] * 1e6 / b['n']:.0f} | "
                       + " | ".join(cells) + " |")
    out.append("")


if __name__ == "__main__":
    main()
