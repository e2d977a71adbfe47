"""Vectors for the system-level tests, as COPY text rows "id<TAB>[x,y,...]".

  tapdata.py fvecs FILE FIRST COUNT [--id-start N]
      rows FIRST .. FIRST+COUNT-1 of a .fvecs file (ids from N, default 1)
  tapdata.py synth COUNT DIM SEED [--id-start N] [--centers C]
      seeded clustered vectors: C gaussian clusters (default 40) with unit
      spread around centres drawn in [-3, 3)^DIM (clusters that touch),
      rounded to 4 decimals so that the text is the value the database
      stores, up to float32 rounding
  tapdata.py knn BASE_ROWS QUERY_ROWS K
      the exact K smallest L2 distances of every query among the base rows
      (both in the COPY text form above), computed in float64: one line
      "query_id<TAB>rank<TAB>distance" per result, rank from 1

The rows are written to standard output.
"""
import argparse
import sys

import numpy as np


def read_fvecs(path, first, count):
    with open(path, "rb") as f:
        dim = int(np.frombuffer(f.read(4), dtype="<i4")[0])
        if dim <= 0 or dim > 100000:
            sys.exit(f"tapdata: {path}: implausible dimension {dim}")
        row = 4 + 4 * dim
        f.seek(first * row)
        raw = f.read(count * row)
    if len(raw) != count * row:
        sys.exit(f"tapdata: {path} holds fewer than {first + count} vectors of dimension {dim}")
    m = np.frombuffer(raw, dtype="<f4").reshape(count, dim + 1)
    if not np.all(m[:, 0].view("<i4") == dim):
        sys.exit(f"tapdata: {path}: rows of different dimensions")
    return m[:, 1:]


def fmt_row(v):
    # Integral data (Fashion-MNIST's pixels) prints as integers; the rest
    # with enough digits to round-trip through float32.
    if np.all(v == np.round(v)):
        return "[" + ",".join(map(str, v.astype(np.int64).tolist())) + "]"
    return "[" + ",".join("%.9g" % x for x in v.tolist()) + "]"


def write_rows(m, id_start):
    out = sys.stdout
    for i, v in enumerate(m):
        out.write(f"{id_start + i}\t{fmt_row(v)}\n")


def read_rows(path):
    ids, vecs = [], []
    with open(path) as f:
        for line in f:
            i, text = line.rstrip("\n").split("\t")
            ids.append(int(i))
            vecs.append(np.array(text.strip("[]").split(","), dtype=np.float64))
    return np.array(ids), np.vstack(vecs)


def synth(count, dim, seed, centers):
    rng = np.random.default_rng(seed)
    # The centres depend on the dimension and the number of clusters only,
    # so base rows and queries drawn with other seeds share them.
    c = np.random.default_rng(1000 + dim * 7 + centers).uniform(-3, 3, size=(centers, dim))
    which = rng.integers(0, centers, size=count)
    m = c[which] + rng.normal(0.0, 1.0, size=(count, dim))
    return np.round(m, 4)


def knn(base_path, query_path, k):
    bid, b = read_rows(base_path)
    qid, q = read_rows(query_path)
    bn = (b * b).sum(axis=1)
    for i in range(len(q)):
        d2 = bn - 2.0 * (b @ q[i]) + (q[i] * q[i]).sum()
        top = np.argpartition(d2, k)[:k] if k < len(b) else np.arange(len(b))
        # recompute the chosen few directly: the expansion above loses
        # digits when distances are small against the norms
        d = np.sqrt(((b[top] - q[i]) ** 2).sum(axis=1))
        for r, x in enumerate(np.sort(d)):
            sys.stdout.write(f"{qid[i]}\t{r + 1}\t{x:.6f}\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fvecs")
    f.add_argument("file")
    f.add_argument("first", type=int)
    f.add_argument("count", type=int)
    f.add_argument("--id-start", type=int, default=1)
    s = sub.add_parser("synth")
    s.add_argument("count", type=int)
    s.add_argument("dim", type=int)
    s.add_argument("seed", type=int)
    s.add_argument("--id-start", type=int, default=1)
    s.add_argument("--centers", type=int, default=40)
    n = sub.add_parser("knn")
    n.add_argument("base")
    n.add_argument("query")
    n.add_argument("k", type=int)
    a = p.parse_args()
    if a.cmd == "fvecs":
        write_rows(read_fvecs(a.file, a.first, a.count), a.id_start)
    elif a.cmd == "synth":
        write_rows(synth(a.count, a.dim, a.seed, a.centers), a.id_start)
    else:
        knn(a.base, a.query, a.k)


if __name__ == "__main__":
    main()
