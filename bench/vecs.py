#!/usr/bin/python3
"""Writers of the benchmark's synthetic and text data sets, as .fvecs.

    vecs.py random N DIM SEED OUT.fvecs
        N rows of DIM floats uniform in [0, 1), numpy's PCG64 seeded with SEED,
        so the same arguments always give the same file.
    vecs.py text VECTORS.txt NAMES.txt NQUERIES SEED OUTDIR
        VECTORS.txt: one whitespace-separated vector per line (the output of
        fasttext print-sentence-vectors), NAMES.txt: the matching package
        names. Rows are scaled to unit length (rows of length zero, from text
        with no known word, are dropped), then NQUERIES rows picked by a
        seeded permutation become OUTDIR/query.fvecs and the rest, in their
        original order, OUTDIR/base.fvecs; OUTDIR/base.names and
        OUTDIR/query.names list the packages row by row.

Every file is written under a temporary name and renamed.
"""
import os
import sys

import numpy as np


def write_fvecs(path, rows):
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    n, dim = rows.shape
    out = np.empty((n, dim + 1), dtype=np.float32)
    out[:, 0] = np.array([dim], dtype=np.int32).view(np.float32)[0]
    out[:, 1:] = rows
    tmp = path + ".tmp"
    out.tofile(tmp)
    os.replace(tmp, path)


def write_lines(path, lines):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)


def cmd_random(n, dim, seed, out):
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    n, dim = int(n), int(dim)
    # Slice by slice, so a million rows are never all in memory at once.
    step = 65536
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        for i in range(0, n, step):
            m = min(step, n - i)
            block = np.empty((m, dim + 1), dtype=np.float32)
            block[:, 0] = np.array([dim], dtype=np.int32).view(np.float32)[0]
            block[:, 1:] = rng.random((m, dim), dtype=np.float32)
            block.tofile(f)
    os.replace(tmp, out)


def cmd_text(vectors, names, nq, seed, outdir):
    nq = int(nq)
    with open(names) as f:
        labels = [line.rstrip("\n") for line in f]
    vecs = np.loadtxt(vectors, dtype=np.float64, ndmin=2)
    if vecs.shape[0] != len(labels):
        sys.exit(f"vecs.py: {vectors} has {vecs.shape[0]} rows, {names} has {len(labels)} names")
    norms = np.linalg.norm(vecs, axis=1)
    keep = norms > 0
    dropped = int((~keep).sum())
    vecs = vecs[keep] / norms[keep, None]
    labels = [l for l, k in zip(labels, keep) if k]
    n = vecs.shape[0]
    if nq >= n:
        sys.exit(f"vecs.py: {nq} queries asked of only {n} vectors")
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    qidx = np.sort(rng.permutation(n)[:nq])
    is_q = np.zeros(n, dtype=bool)
    is_q[qidx] = True
    write_fvecs(os.path.join(outdir, "base.fvecs"), vecs[~is_q])
    write_fvecs(os.path.join(outdir, "query.fvecs"), vecs[is_q])
    write_lines(os.path.join(outdir, "base.names"), [l for l, q in zip(labels, is_q) if not q])
    write_lines(os.path.join(outdir, "query.names"), [l for l, q in zip(labels, is_q) if q])
    print(f"vecs.py: {n - nq} base and {nq} query vectors of dimension {vecs.shape[1]}"
          f" ({dropped} zero vectors dropped)", file=sys.stderr)


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "random":
        cmd_random(*sys.argv[2:])
    elif len(sys.argv) == 7 and sys.argv[1] == "text":
        cmd_text(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
