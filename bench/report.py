#!/usr/bin/python3
"""Turn the benchmark's JSON lines (bench_search --json, hnswlib_bench.py,
peers.mjs) into Markdown tables: per data set one table of builds and one
of searches, and the QPS of each engine, relative to hnswlib's, at recall@10
0.95 and 0.99.

    report.py RESULTS.jsonl DATASETS.tsv > tables.md
    report.py --merge NEW.jsonl OLD.jsonl NEW_SETS.tsv OLD_SETS.tsv

DATASETS.tsv: one data set per line, name<TAB>description, in report order.
--merge (scripts/bench.sh, for a run of a subset) rewrites NEW.jsonl with
the records of OLD.jsonl for every (data set, engine) pair NEW does not
have, then NEW's; and NEW_SETS.tsv with OLD's data sets, in OLD's order,
each replaced by NEW's line when NEW has it, then NEW's others.

Per data set, after the search tables, a memory table: bytes per vector
of each engine's index in memory and the ratio to hnswlib's. For ruvector
that is rv_stats.index_bytes (graph, codes, quantizer: what the index adds
to the memory-mapped float vectors); for hnswlib both its RSS growth over
the build and its save_index file (its in-memory layout, vectors included).

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
ORDER = ["ruvector", "ruvector-sq8", "ruvector-pq", "ruvector-binary", "hnswlib", "hnswlib-node",
         "usearch", "ruvector-core"]


def mib(b):
    return f"{b / 2**20:.1f} MiB"


def qps_at(rows, target, key="qps"):
    """(qps, how) or None; key "qps_cpu" for the CPU-time figure."""
    prev = None
    for r in rows:
        if key not in r:
            return None
        if r["recall"] >= target:
            if prev is None or prev["recall"] >= r["recall"]:
                return r[key], f"ef {r['ef']}"
            f = (target - prev["recall"]) / (r["recall"] - prev["recall"])
            return prev[key] + f * (r[key] - prev[key]), f"ef {prev['ef']}-{r['ef']}"
        prev = r
    return None


def merge(new_res, old_res, new_sets, old_sets):
    fresh = [l for l in open(new_res) if l.strip().startswith("{")]
    pairs = {(json.loads(l)["dataset"], json.loads(l)["engine"]) for l in fresh}
    kept = [l for l in open(old_res) if l.strip().startswith("{")
            and (json.loads(l)["dataset"], json.loads(l)["engine"]) not in pairs]
    with open(new_res, "w") as f:
        f.writelines(kept + fresh)
    now = {}
    for l in open(new_sets):
        if l.strip():
            now[l.split("\t", 1)[0]] = l
    lines = []
    for l in open(old_sets):
        if l.strip():
            lines.append(now.pop(l.split("\t", 1)[0], l))
    with open(new_sets, "w") as f:
        f.writelines(lines + list(now.values()))


def memory(out, mine, engines):
    """Bytes per vector of each engine's index in memory, vs hnswlib's."""
    builds = {e: [r for r in mine if r["engine"] == e and r["kind"] == "build"] for e in engines}
    hn = builds.get("hnswlib") or []
    ref = hn[0]["memory_bytes"] / hn[0]["n"] if hn else None
    ref_file = hn[0]["index_bytes"] / hn[0]["n"] if hn else None
    rows = []
    for e in engines:
        if not builds[e]:
            continue
        b = builds[e][0]
        if "index_mem_bytes" in b:
            per = b["index_mem_bytes"] / b["n"]
            what = (f"graph + {b['quant']} codes of {b['code_bytes']} bytes" if b.get("quant", "none") != "none"
                    else "graph") + " (rv_stats.index_bytes; vectors in the mapped file)"
        elif e.startswith("ruvector") and e != "ruvector-core":
            continue
        else:
            per = b["memory_bytes"] / b["n"]
            what = b["memory_what"]
            if e == "hnswlib":
                what += f"; its save_index file: {ref_file:.0f} bytes/vector"
        ratio = f"{per / ref:.2f}" if ref else "n/a"
        ratio_file = f"{per / ref_file:.2f}" if ref_file else "n/a"
        rows.append(f"| {e} | {per:.0f} | {what} | {ratio} | {ratio_file} |")
    if not rows:
        return
    out.append("| engine | index memory (bytes/vector) | what | x hnswlib RSS | x hnswlib file |")
    out.append("|---|---:|---|---:|---:|")
    out.extend(rows)
    out.append("")


def main():
    if sys.argv[1] == "--merge":
        merge(*sys.argv[2:6])
        return
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
        out.append("| engine | ef | recall@10 | QPS (1 thread) | QPS (CPU time) | p50 (us) | p99 (us) | queries |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        curves = {}
        for e in engines:
            rows = sorted([r for r in mine if r["engine"] == e and r["kind"] == "search"],
                          key=lambda r: r["ef"])
            curves[e] = rows
            if not rows:
                out.append(f"| {e} | | no search results | | | | | |")
            for r in rows:
                cpu = f"{r['qps_cpu']:.0f}" if "qps_cpu" in r else ""
                out.append(f"| {e} | {r['ef']} | {r['recall']:.4f} | {r['qps']:.0f} | {cpu} | "
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
        # The same from CPU time, for the engines that measured it: robust
        # to the time slices a shared machine takes away from wall time.
        timed = [e for e in engines if curves[e] and all("qps_cpu" in r for r in curves[e])]
        if "hnswlib" in timed and len(timed) > 1:
            out.append("| engine | " + " | ".join(f"QPS (CPU) at recall {t}" for t in TARGETS) + " | "
                       + " | ".join(f"x hnswlib at {t}" for t in TARGETS) + " |")
            out.append("|---|" + "---:|" * (2 * len(TARGETS)))
            ref = {t: qps_at(curves.get("hnswlib", []), t, "qps_cpu") for t in TARGETS}
            for e in timed:
                cells, ratios = [], []
                for t in TARGETS:
                    q = qps_at(curves[e], t, "qps_cpu")
                    cells.append(f"{q[0]:.0f} ({q[1]})" if q else "not reached")
                    ratios.append(f"{q[0] / ref[t][0]:.2f}" if q and ref[t] else "n/a")
                out.append(f"| {e} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
            out.append("")
        memory(out, mine, engines)
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
                err = [r for r in recs if r.get("dataset") == name and r["engine"] == e
                       and r["kind"] == "error"]
                out.append(f"| {e} | {name} | {'failed' if err else 'not run'} | "
                           + " | ".join("" for _ in SCALE_EFS) + " |")
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
