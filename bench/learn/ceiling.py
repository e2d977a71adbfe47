#!/usr/bin/python3
"""ceiling.py - what a learner of each kind could reach with perfect labels.

    /usr/bin/python3 bench/learn/ceiling.py [--data DIR] [--sets debian,fashion]

learn_bench measures what ruvector learns from simulated clicks. This
script asks a different question: with the hidden truth itself as
training labels (no clicks, no noise, no position bias), how far can a
model of the same kind as ruvector's learners go on held-out queries? A
variant where even that gains nothing cannot be learned from the
embeddings, by any amount of feedback.

Both sets are built from the files scripts/learndata.sh prepares, with the
same hidden relevance as bench/learn/learn_sim.c (the truth of a query is
its 10 nearest relevant items, NDCG@10 is binary against it), and a
seeded split of their own: 500 train and 500 held-out queries.

  debian   (c) relevant: x in the query's section, or a direct
           Depends/Recommends between them. Reported:
           - the share of the truth within the plain top 10 .. 200;
           - the oracle re-ranker: the plain top 100 ordered by the true
             relevance, then by similarity;
           - a bilinear re-ranker, score = cos(q, x) + lam * logit with
             logit = a cos(q, x) + (A x).(C q) + b, rank 16 and full rank
             (128), fitted by logistic regression on the true labels of
             the train queries' top-100 pools; lam is chosen on the
             held-out queries themselves, so the figure is an upper bound.
  fashion  (a) relevant: class(x) == m(class(q)) with learn_bench's m (A).
           A linear query adapter q' = q + W q (what a BaseLoRA is),
           W fitted by ridge regression onto the mean of each train
           query's truth items minus the query, truncated to rank 8 and
           16 by SVD, searched exactly.

numpy only (Debian's python3-numpy). About two minutes.
"""
import argparse
import os
import sys

import numpy as np

K = 10
DISC = 1.0 / np.log2(np.arange(K) + 2.0)


def fvecs(path, rows=None):
    a = np.fromfile(path, dtype=np.int32)
    if a.size == 0:
        sys.exit(f"ceiling.py: {path} is empty")
    d = int(a[0])
    x = a.reshape(-1, d + 1)[:, 1:].view(np.float32)
    x = x[:rows] if rows else x
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def ndcg(ranking, truth):
    return sum(DISC[j] for j, x in enumerate(ranking[:K]) if x in truth) / DISC.sum()


def mean_ndcg(rankings, truths):
    return float(np.mean([ndcg(r, t) for r, t in zip(rankings, truths)]))


def split(n, seed):
    perm = np.random.default_rng(seed).permutation(n)
    return perm[:500], perm[500:1000]


# ---- Debian ---------------------------------------------------------------

def debian(data):
    base = fvecs(f"{data}/text/base.fvecs")
    queries = fvecs(f"{data}/text/query.fvecs")
    bnames = open(f"{data}/text/base.names").read().split("\n")[: len(base)]
    qnames = open(f"{data}/text/query.names").read().split("\n")[: len(queries)]
    section, rels = {}, {}
    for line in open(f"{data}/learn/debian.tsv"):
        name, sec, rel = line.rstrip("\n").split("\t")
        section[name] = sec
        rels[name] = [r for r in rel.split(",") if r]
    ids = {s: i for i, s in enumerate(sorted(set(section.values()) - {"-"}))}
    bsec = np.array([ids.get(section.get(n, "-"), -1) for n in bnames])
    qsec = np.array([ids.get(section.get(n, "-"), -1) for n in qnames])
    brow = {n: i for i, n in enumerate(bnames)}
    qrow = {n: i for i, n in enumerate(qnames)}
    qrel = [set() for _ in qnames]
    for i, n in enumerate(qnames):
        qrel[i].update(brow[r] for r in rels.get(n, []) if r in brow)
    for i, n in enumerate(bnames):
        for r in rels.get(n, []):
            if r in qrow:
                qrel[qrow[r]].add(i)

    sims = queries @ base.T
    keep, truth, labels = [], [], []
    for i in range(len(queries)):
        rel = (bsec == qsec[i]) & (qsec[i] >= 0)
        rel[list(qrel[i])] = True
        if rel.sum() < K:
            continue
        keep.append(i)
        truth.append(set(np.argsort(-np.where(rel, sims[i], -9.0))[:K]))
        labels.append(rel)
    keep = np.array(keep)
    pools = np.argsort(-sims[keep], axis=1)[:, :200]
    tr, te = split(len(keep), 0x64656231)
    print(f"debian: {len(base)} items, {len(keep)} queries with >= {K} relevant items; 500 train, 500 held-out")
    print("  share of the truth within the plain top N (held-out):",
          ", ".join(f"{n}: {np.mean([len(truth[k] & set(pools[k, :n])) / K for k in te]):.3f}"
                    for n in (10, 20, 50, 100, 200)))
    plain = mean_ndcg([pools[k] for k in te], [truth[k] for k in te])
    print(f"  plain ranking: held-out NDCG@10 {plain:.4f}")

    P = 100
    X = base[pools[:, :P]].astype(np.float64)           # queries x P x d
    Q = queries[keep].astype(np.float64)
    Y = np.stack([labels[k][pools[k, :P]] for k in range(len(keep))]).astype(np.float64)
    S = np.einsum("kpd,kd->kp", X, Q)
    oracle = mean_ndcg([pools[k, :P][np.argsort(-(S[k] + 10 * Y[k]))] for k in te], [truth[k] for k in te])
    print(f"  oracle re-ranker of the top {P} (true relevance first): held-out NDCG@10 {oracle:.4f}")

    d = base.shape[1]
    for rank in (16, d):
        rng = np.random.default_rng(1)
        A, C = rng.normal(0, 0.1, (d, rank)), rng.normal(0, 0.1, (d, rank))
        params = [A, C, np.array(10.0), np.array(-5.0)]
        m1 = [np.zeros_like(p) for p in params]
        m2 = [np.zeros_like(p) for p in params]
        Xt, Qt, St, Yt = X[tr], Q[tr], S[tr], Y[tr]
        for step in range(1, 301):
            A, C, a, b = params
            U, V = Xt @ A, Qt @ C
            z = a * St + np.einsum("kpr,kr->kp", U, V) + b
            g = (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))) - Yt) / Yt.size
            grads = [np.einsum("kpd,kp,kr->dr", Xt, g, V), np.einsum("kd,kp,kpr->dr", Qt, g, U),
                     np.sum(g * St), np.sum(g)]
            for i, gr in enumerate(grads):           # Adam, lr 0.02
                m1[i] = 0.9 * m1[i] + 0.1 * gr
                m2[i] = 0.999 * m2[i] + 0.001 * gr * gr
                params[i] = params[i] - 0.02 * (m1[i] / (1 - 0.9 ** step)) / (
                    np.sqrt(m2[i] / (1 - 0.999 ** step)) + 1e-8)
        A, C, a, b = params
        logit = a * S + np.einsum("kpr,kr->kp", X @ A, Q @ C) + b
        acc = np.mean((logit[te] > 0) == (Y[te] > 0))
        base_acc = np.mean(Y[te] == (Y[tr].mean() > 0.5))
        best = max((mean_ndcg([pools[k, :P][np.argsort(-(S[k] + lam * logit[k]))] for k in te],
                              [truth[k] for k in te]), lam)
                   for lam in (0.0, 0.001, 0.003, 0.01, 0.03, 0.1))
        print(f"  bilinear re-ranker, rank {rank}, fitted on the true labels: held-out relevance accuracy "
              f"{acc:.3f} (majority class {base_acc:.3f}); best held-out NDCG@10 {best[0]:.4f} at lam {best[1]:g} "
              f"({(best[0] / plain - 1) * 100:+.1f}% over plain)")


# ---- Fashion-MNIST --------------------------------------------------------

# learn_bench's workload A for Fashion-MNIST (printed as "m (A)" at its start).
FASHION_M = [4, 3, 0, 1, 2, 7, 8, 9, 6, 5]


def fashion(data):
    base = fvecs(f"{data}/fashion-mnist-train.fvecs", 20000)
    test = fvecs(f"{data}/fashion-mnist-test.fvecs")
    ybase = np.frombuffer(open(f"{data}/learn/fashion-train.labels", "rb").read(), np.uint8)[:20000]
    ytest = np.frombuffer(open(f"{data}/learn/fashion-test.labels", "rb").read(), np.uint8)
    qi = np.random.default_rng(0x6661736831).permutation(len(test))[:1000]
    tr, te = qi[:500], qi[500:]

    def truth(rows):
        s = test[rows] @ base.T
        return [set(np.argsort(-np.where(ybase == FASHION_M[ytest[r]], s[i], -9.0))[:K]) for i, r in enumerate(rows)]

    def search(qv):
        return np.argsort(-(qv @ base.T), axis=1)[:, :K]

    ttr, tte = truth(tr), truth(te)
    plain = mean_ndcg(search(test[te]), tte)
    print(f"fashion: {len(base)} items, 500 train, 500 held-out queries")
    print(f"  plain ranking: held-out NDCG@10 {plain:.4f}")
    X = test[tr].astype(np.float64)
    target = np.stack([base[list(t)].mean(0) for t in ttr]) - X
    W = np.linalg.solve(X.T @ X + np.eye(X.shape[1]), X.T @ target)
    U, s, Vt = np.linalg.svd(W)
    for rank in (8, 16):
        Wr = (U[:, :rank] * s[:rank]) @ Vt[:rank]
        q = test[te] + test[te] @ Wr
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        got = mean_ndcg(search(q), tte)
        print(f"  linear query adapter, rank {rank}, fitted on the truth: held-out NDCG@10 {got:.4f} "
              f"({(got / plain - 1) * 100:+.1f}% over plain)")


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(root, "data"))
    ap.add_argument("--sets", default="debian,fashion")
    o = ap.parse_args()
    for name in o.sets.split(","):
        {"debian": debian, "fashion": fashion}.get(name, lambda _: sys.exit(f"ceiling.py: unknown set {name}"))(o.data)


if __name__ == "__main__":
    main()
