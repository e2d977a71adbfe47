#!/usr/bin/env bash
# The search benchmark: ruvector and its peers on the same data, same
# parameters (m = 16, ef_construction = 200, built on 2 threads where the
# engine can, searched on 1 thread, k = 10, ef 10..800), one after the other
# in one run. Writes docs/BENCHMARKS.md and prints the tables.
#
#   scripts/bench.sh [BUILD_DIR]
#
# Engines: ruvector (bench/bench_search), ruvector-sq8, ruvector-pq and
# ruvector-binary (the same on a quantized collection: traversal on codes,
# exact re-rank), hnswlib (Debian's python3-hnswlib,
# bench/hnswlib_bench.py), and from the npm registry, installed into
# data/peers: hnswlib-node, usearch and @ruvector/core (bench/peers.mjs).
# An engine that cannot be installed or fails gets a row saying so.
# Data sets:
#   fashion   Fashion-MNIST 60,000 x 784, L2, 10,000 queries (scripts/data.sh)
#   text      fastText 128-d embeddings of Debian package descriptions,
#             cosine, 1,000 queries (scripts/textdata.sh)
#   rand-10k, rand-100k (rand-1m with BENCH_1M=1)
#             uniform random 128-d in [0, 1), L2, 1,000 queries, seeded
# Environment: BENCH_1M=1 adds the 1M set (far longer: on 2 shared cores
# the single-threaded hnswlib-node build alone takes a quarter of an hour;
# @ruvector/core, at about 2 ms per inserted vector, would take more than
# half an hour and is skipped there, with a row saying so, unless
# BENCH_1M_SLOW=1); BENCH_SETS picks
# data sets by name (e.g. BENCH_SETS="text rand-10k"); BENCH_ENGINES picks
# engines; BENCH_REPORT_ONLY=1 measures nothing and rewrites the report from
# the last run's results (data/bench-results.jsonl, data/bench-sets.tsv).
# A run with BENCH_SETS or BENCH_ENGINES measures only those and keeps the
# last run's results for every other (data set, engine) pair, so the report
# stays whole (BENCH_MERGE=0 reports only this run); BENCH_SERVER=0 skips
# the HTTP server load. The quick subset for quantization:
#   BENCH_SETS="fashion text" BENCH_ENGINES="ruvector ruvector-sq8 hnswlib" \
#   BENCH_SERVER=0 scripts/bench.sh build
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
cd "$root"

PEERS_DIR=data/peers
NPM_PEERS=(hnswlib-node usearch @ruvector/core)
ENGINES=${BENCH_ENGINES:-"ruvector ruvector-sq8 ruvector-pq ruvector-binary hnswlib hnswlib-node usearch ruvector-core"}
SETS=${BENCH_SETS:-"fashion text rand-10k rand-100k"}
MERGE=0
if [ -n "${BENCH_SETS:-}${BENCH_ENGINES:-}" ] && [ "${BENCH_MERGE:-1}" = 1 ] && [ -f data/bench-results.jsonl ]; then
	MERGE=1
fi
if [ "${BENCH_1M:-0}" = 1 ] && [ -z "${BENCH_SETS:-}" ]; then SETS="$SETS rand-1m"; fi

say() { echo "bench.sh: $*" >&2; }

./scripts/setup.sh bench
[ -x "$build/bench/bench_search" ] || { say "build first (make build)"; exit 1; }
[ -x "$build/bench/groundtruth" ] || { say "missing $build/bench/groundtruth (make build)"; exit 1; }

# npm peers, into data/peers (not in git). A failure here is not fatal: the
# engines that did not install report it in their rows.
peers_ok=1
for p in "${NPM_PEERS[@]}"; do
	[ -f "$PEERS_DIR/node_modules/$p/package.json" ] || peers_ok=0
done
if [ $peers_ok = 0 ]; then
	if command -v npm >/dev/null 2>&1; then
		say "installing ${NPM_PEERS[*]} from the npm registry into $PEERS_DIR"
		mkdir -p "$PEERS_DIR"
		npm install --prefix "$PEERS_DIR" --no-audit --no-fund --silent "${NPM_PEERS[@]}" >&2 ||
			say "npm install failed; the npm peers will report errors"
	else
		say "npm is missing; the npm peers will report errors"
	fi
fi

# Data sets: name<TAB>base<TAB>query<TAB>gt<TAB>metric<TAB>queries<TAB>efs<TAB>description
EFS=10,20,40,80,120,200,400,800
# Uniform random 128-d data needs a far larger ef for the same recall.
EFS_RANDOM=$EFS,1600,3200
commas() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sets_tsv=$tmp/sets.tsv
: >"$sets_tsv"
random_set() { # NAME N
	local name=$1 n=$2 dir=data/random/$1
	local want_base=$(($2 * (4 + 4 * 128))) want_q=$((1000 * (4 + 4 * 128))) want_gt=$((1000 * (4 + 4 * 100)))
	mkdir -p "$dir"
	if [ "$(stat -c %s "$dir/base.fvecs" 2>/dev/null || echo 0)" != $want_base ] ||
		[ "$(stat -c %s "$dir/query.fvecs" 2>/dev/null || echo 0)" != $want_q ]; then
		say "writing $dir (uniform random, seeded)"
		rm -f "$dir/gt100.ivecs"
		/usr/bin/python3 bench/vecs.py random "$n" 128 1 "$dir/base.fvecs"
		/usr/bin/python3 bench/vecs.py random 1000 128 2 "$dir/query.fvecs"
	fi
	if [ "$(stat -c %s "$dir/gt100.ivecs" 2>/dev/null || echo 0)" != $want_gt ]; then
		say "exact ground truth for $name"
		"$build/bench/groundtruth" "$dir/base.fvecs" "$dir/query.fvecs" 100 "$dir/gt100.ivecs" --check 3 >&2
	fi
	printf '%s\t%s\t%s\t%s\tl2\t1000\t%s\t%s\n' "$name" "$dir/base.fvecs" "$dir/query.fvecs" "$dir/gt100.ivecs" "$EFS_RANDOM" \
		"Uniform random vectors in [0, 1)^128 (numpy PCG64, seed 1 for the $(commas "$n") base vectors, seed 2 for the 1,000 queries), L2, exact ground truth. Random data has no structure for a graph to exploit: recall at a given ef is far below that on real data, so the sweep goes on to ef 1600 and 3200; the set shows how cost grows with n." >>"$sets_tsv"
}
[ "${BENCH_REPORT_ONLY:-0}" = 1 ] && SETS=
for s in $SETS; do
	case $s in
	fashion)
		RV_BUILD_DIR=$build ./scripts/data.sh fashion
		printf 'fashion\tdata/fashion-mnist-train.fvecs\tdata/fashion-mnist-test.fvecs\tdata/fashion-mnist-gt100.ivecs\tl2\t10000\t%s\t%s\n' "$EFS" \
			"Fashion-MNIST from Debian's dataset-fashion-mnist: 60,000 x 784 base vectors (raw pixels), 10,000 queries, L2, exact ground truth (bench/groundtruth.c)." >>"$sets_tsv"
		;;
	text)
		./scripts/textdata.sh "$build"
		printf 'text\tdata/text/base.fvecs\tdata/text/query.fvecs\tdata/text/gt100.ivecs\tcosine\t1000\t%s\t%s\n' "$EFS" \
			"$(commas "$(wc -l <data/text/base.names)") Debian package descriptions (bookworm apt lists) embedded as 128-d unit vectors by a fastText skipgram model trained on those descriptions (scripts/textdata.sh), 1,000 held-out packages as queries, cosine, exact ground truth." >>"$sets_tsv"
		;;
	rand-10k) random_set rand-10k 10000 ;;
	rand-100k) random_set rand-100k 100000 ;;
	rand-1m) random_set rand-1m 1000000 ;;
	*) say "unknown data set $s"; exit 1 ;;
	esac
done

results=$tmp/results.jsonl
: >"$results"
if [ "${BENCH_REPORT_ONLY:-0}" = 1 ]; then
	cp data/bench-results.jsonl "$results"
	cp data/bench-sets.tsv "$sets_tsv"
fi
[ "${BENCH_REPORT_ONLY:-0}" = 1 ] || while IFS=$'\t' read -r name base query gt metric nq efs desc; do
	for e in $ENGINES; do
		say "$name: $e"
		if [ "$name" = rand-1m ] && [ "$e" = ruvector-core ] && [ "${BENCH_1M_SLOW:-0}" != 1 ]; then
			printf '{"dataset":"%s","engine":"%s","kind":"error","error":"not run: its build (about 2 ms per vector here) would take over 30 minutes; BENCH_1M_SLOW=1 runs it"}\n' "$name" "$e" >>"$results"
			continue
		fi
		case $e in
		ruvector | ruvector-sq8 | ruvector-pq | ruvector-binary)
			quant=none
			case $e in ruvector-*) quant=${e#ruvector-} ;; esac
			"$build/bench/bench_search" --threads 2 --base "$base" --query "$query" --gt "$gt" \
				--metric "$metric" --name "$name" --queries "$nq" --efs "$efs" --db "$tmp/$name.rvf" \
				--quant "$quant" --engine "$e" --json "$tmp/rv.jsonl" >&2 && cat "$tmp/rv.jsonl" >>"$results" ||
				printf '{"dataset":"%s","engine":"%s","kind":"error","error":"bench_search failed (exit status %s)"}\n' "$name" "$e" "$?" >>"$results"
			rm -f "$tmp/$name.rvf" "$tmp/rv.jsonl"
			;;
		hnswlib)
			/usr/bin/python3 bench/hnswlib_bench.py --threads 2 --base "$base" --query "$query" --gt "$gt" \
				--metric "$metric" --name "$name" --queries "$nq" --efs "$efs" >>"$results" ||
				printf '{"dataset":"%s","engine":"hnswlib","kind":"error","error":"hnswlib_bench.py failed (exit status %s)"}\n' "$name" "$?" >>"$results"
			;;
		*)
			node bench/peers.mjs --engine "$e" --threads 2 --base "$base" --query "$query" --gt "$gt" \
				--metric "$metric" --name "$name" --queries "$nq" --efs "$efs" --modules "$PEERS_DIR" >>"$results" ||
				printf '{"dataset":"%s","engine":"%s","kind":"error","error":"peers.mjs failed (exit status %s)"}\n' "$name" "$e" "$?" >>"$results"
			;;
		esac
		tail -n 1 "$results" | cut -c1-160 >&2
	done
done <"$sets_tsv"
if [ $MERGE = 1 ]; then
	# Keep the last run's records of every (data set, engine) pair this run
	# did not measure, and its data sets in their order.
	/usr/bin/python3 bench/report.py --merge "$results" data/bench-results.jsonl "$sets_tsv" data/bench-sets.tsv
fi
cut -f1,8 "$sets_tsv" >"$tmp/desc.tsv"
/usr/bin/python3 bench/report.py "$results" "$tmp/desc.tsv" >"$tmp/tables.md"
cp "$results" data/bench-results.jsonl
cp "$sets_tsv" data/bench-sets.tsv

out=docs/BENCHMARKS.md
# Without a server run, keep the last one's section (a partial run must
# not drop what it did not measure).
: >"$tmp/server_prev.md"
if [ "${BENCH_SERVER:-1}" != 1 ] && [ -f "$out" ]; then
	sed -n '/^## HTTP server (wrk)$/,$p' "$out" >"$tmp/server_prev.md"
fi
{
	echo "# Benchmarks"
	echo
	echo "Made by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
	echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores,"
	echo "shared with other work (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end): absolute"
	echo "figures are noisy, and QPS and p99 especially; compare engines within this run, and read"
	echo "recall and p50 before QPS. Build: $("$build/ruvector" --version 2>/dev/null || echo ruvector)."
	echo
	echo "## Method"
	echo
	echo "Every engine indexes the same base vectors with m = 16 and ef_construction = 200"
	echo "(build on 2 threads where the engine allows it; the threads column says), then runs"
	echo "each query alone, k = 10, at ef = 10, 20, 40, 80, 120, 200, 400, 800 (random sets:"
	echo "also 1600 and 3200) on one thread."
	echo "recall@10 is measured from the returned ids against exact ground truth (the first"
	echo "10 of the 100 stored per query). QPS is queries / summed per-query time; p50 and p99"
	echo "are of the per-query times. A 200-query warm-up runs first, untimed."
	echo
	echo "- **ruvector**: bench/bench_search, one \`rv_db_search\` per query through the public"
	echo "  C API, on the collection closed and reopened from its .rvf file (open is that"
	echo "  reopen); index size is the file; memory is \`rv_stats.memory_bytes\` (the handle's"
	echo "  heap; vectors stay in the mapped file)."
	echo "- **ruvector-sq8**, **ruvector-pq**, **ruvector-binary**: the same on a collection"
	echo "  created with \`rv_open_opts.quant\` (docs/QUANT.md): the graph walk ranks nodes by"
	echo "  their codes and the best max(rerank x k, ef / 2) are re-ranked with the float vectors,"
	echo "  at the collection's default rerank (the note column says). Open includes"
	echo "  copying the stored codes into the graph's rows; index size is the file, codes included."
	echo "- **hnswlib**: Debian's python3-hnswlib (bench/hnswlib_bench.py). QPS comes from one"
	echo "  \`knn_query\` call holding all queries on one thread (its loop runs in C++, so Python's"
	echo "  per-call overhead is not counted); p50 / p99 come from single-query calls on the first"
	echo "  1,000 queries and include that overhead."
	echo "- **hnswlib-node**, **usearch**, **@ruvector/core** (\"ruvector-core\"): npm packages"
	echo "  driven from Node.js by bench/peers.mjs, one call per query, so each query pays a"
	echo "  JS-to-native call. Their settings are in the note column. Memory for hnswlib and the"
	echo "  npm peers is the process RSS growth over the build (it includes the index's copy of"
	echo "  the vectors and allocator slack, so it is not comparable one to one with ruvector's)."
	echo "- @ruvector/core $(grep -o '"version": *"[^"]*"' $PEERS_DIR/node_modules/@ruvector/core/package.json 2>/dev/null | cut -d'"' -f4):"
	echo "  the per-query \`efSearch\` of its search() is accepted but has no effect in this version"
	echo "  (recall is the same at every ef); the index searches with the efSearch of its"
	echo "  hnswConfig (64), so its rows are one operating point repeated, not a sweep. Each hit"
	echo "  also carries its vector back into JavaScript."
	echo
	echo "QPS at a recall target: the first ef whose recall@10 reaches the target; when the ef"
	echo "before it falls short, QPS is interpolated linearly in recall between the two. When"
	echo "the first ef already reaches it, its QPS is taken (a lower bound). \"x hnswlib\" divides"
	echo "by hnswlib's figure on the same data set."
	echo
	cat "$tmp/tables.md"
	if [ -s "$tmp/server_prev.md" ]; then
		echo
		cat "$tmp/server_prev.md"
	fi
} >"$out"
# The HTTP server under wrk (issue: requests per second and p99 of search
# and upsert through `ruvector serve`).
if [ "${BENCH_SERVER:-1}" = 1 ]; then
	say "HTTP server load (bench/server_load.sh)"
	if "$root/bench/server_load.sh" "$build" >"$tmp/server.txt" 2>&1; then
		{
			echo
			echo "## HTTP server (wrk)"
			echo
			echo "\`ruvector serve\` on loopback, 20,000 random 128-d points (Cosine), wrk with 2"
			echo "connections for 10 s per route (bench/server_load.sh). Each acknowledged upsert is"
			echo "committed (fsync) before the answer."
			echo
			echo '```'
			grep -E '^(search|upsert|loaded|wrk:)' "$tmp/server.txt"
			echo '```'
		} >>"$out"
	else
		{ echo; echo "## HTTP server (wrk)"; echo; echo "server_load.sh failed:"; echo '```'; tail -5 "$tmp/server.txt"; echo '```'; } >>"$out"
	fi
fi
echo >&2
cat "$tmp/tables.md"
say "wrote $out (raw results: data/bench-results.jsonl)"
