#!/bin/sh
# seeds.sh - run-to-run spread of learning with all learners: learn_bench
# at 10k events (real and random clicks, no shift) for several class
# seeds of each set, two runs at a time, and a table of held-out NDCG@10
# against no learning (docs/LEARNING.md, "Run-to-run spread").
#
#   bench/learn/seeds.sh BUILD OUT [DEBIAN_SEEDS FIORI_SEEDS FASHION_SEEDS]
#
# Each run's log goes to OUT/SET-SEED.log (its collection and tables to a
# scratch directory under TMPDIR, removed after), the table to
# OUT/seeds.md. Seeds default to 1-8 for Debian and 1-4 for the others
# (an empty list runs none of that set).
set -eu
build=$1
out=$2
debian_seeds=${3-"1 2 3 4 5 6 7 8"}
fiori_seeds=${4-"1 2 3 4"}
fashion_seeds=${5-"1 2 3 4"}
bin="$build/bench/learn_bench"
mkdir -p "$out"

jobs=""
for s in $debian_seeds; do jobs="$jobs debian-$s"; done
for s in $fiori_seeds; do jobs="$jobs fiori-$s"; done
for s in $fashion_seeds; do jobs="$jobs fashion-$s"; done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/ruvector-seeds.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

run_one() {
	set_name=${1%-*}
	seed=${1#*-}
	dir="$scratch/$1"
	mkdir -p "$dir"
	"$bin" --sets "$set_name" --learners all --no-shift --max-events 10000 --seed "$seed" \
		--out "$dir" --work "$dir" >"$out/$1.log" 2>&1
	rm -rf "$dir"
}

# Two at a time (the machine's cores); each run is single-threaded in
# the parts that take long.
set -- $jobs
while [ $# -gt 0 ]; do
	run_one "$1" &
	p1=$!
	p2=""
	if [ $# -gt 1 ]; then
		run_one "$2" &
		p2=$!
	fi
	wait $p1 || { echo "seeds.sh: $1 failed, see $out/$1.log" >&2; exit 1; }
	if [ -n "$p2" ]; then
		wait $p2 || { echo "seeds.sh: $2 failed, see $out/$2.log" >&2; exit 1; }
		shift
	fi
	shift
done

# The table: plain, ALL and random-ALL held-out NDCG@10 at 10k events.
ndcg() { # file pattern -> the held-out NDCG@10 of the last line matching
	grep -E "$2" "$1" | tail -n 1 | sed 's/.*held-out NDCG@10 \([0-9.]*\).*/\1/'
}
{
	echo "| set | seed | no learning | ALL at 10k | change | random clicks at 10k | change |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for j in $jobs; do
		f="$out/$j.log"
		plain=$(ndcg "$f" "no learning: held-out")
		all=$(ndcg "$f" "/ALL +10[0-9]{3} events +held-out")
		rnd=$(ndcg "$f" "/random-ALL +10[0-9]{3} events +held-out")
		awk -v s="${j%-*}" -v k="${j#*-}" -v p="$plain" -v a="$all" -v r="$rnd" 'BEGIN {
			printf "| %s | %s | %.4f | %.4f | %+.1f%% | %.4f | %+.2f%% |\n", s, k, p, a, 100 * (a / p - 1), r, 100 * (r / p - 1)
		}'
	done
} >"$out/seeds.md"
cat "$out/seeds.md"
