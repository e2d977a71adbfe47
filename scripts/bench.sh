#!/usr/bin/env bash
# The search benchmark: ruvector and hnswlib (Debian's python3-hnswlib, the
# reference HNSW implementation) on Fashion-MNIST (60,000 x 784 train,
# 10,000 test queries, exact ground truth), same parameters (m = 16,
# ef_construction = 200, build on 2 threads, search on 1), one after the
# other in one run. Writes docs/BENCHMARKS.md.
#   scripts/bench.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
cd "$root"
./scripts/setup.sh bench
./scripts/data.sh fashion
[ -x "$build/bench/bench_search" ] || { echo "bench.sh: build first (make build)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "bench.sh: ruvector" >&2
"$build/bench/bench_search" --threads 2 --db "$tmp/fashion.rvf" --out "$tmp/rv.md" >&2
echo "bench.sh: hnswlib" >&2
/usr/bin/python3 bench/hnswlib_fashion.py --data data --threads 2 > "$tmp/hl.md"

out=docs/BENCHMARKS.md
{
  echo "# Benchmarks"
  echo
  echo "Made by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores,"
  echo "shared with other work: absolute figures are noisy, compare the two engines within this run."
  echo "Build: $("$build/ruvector" --version)."
  echo
  echo "Data: Fashion-MNIST from Debian's dataset-fashion-mnist, 60,000 x 784 (L2) base vectors,"
  echo "10,000 queries, recall@10 against exact ground truth (bench/groundtruth.c)."
  echo "Both engines: m = 16, ef_construction = 200, built on 2 threads, searched on 1 thread."
  echo
  echo "# ruvector"
  echo
  sed 's/^## /### /' "$tmp/rv.md"
  echo
  echo "# hnswlib $(/usr/bin/python3 -c 'import importlib.metadata as m; print(m.version("hnswlib"))' 2>/dev/null || true)"
  echo
  echo "Queries go to hnswlib in one knn_query call on one thread, so Python's per-call"
  echo "overhead does not count against it; ruvector's figures are one rv_db_search call per query."
  echo
  echo "| step | result |"
  echo "|---|---|"
  head -1 "$tmp/hl.md"
  echo
  tail -n +2 "$tmp/hl.md"
} > "$out"
echo "bench.sh: wrote $out" >&2
