#!/usr/bin/env bash
# The text data set of the benchmark: 128-d fastText sentence embeddings of
# Debian's package descriptions, compared by cosine.
#
#   scripts/textdata.sh [BUILD_DIR]
#
# 1. Corpus: the Description field (the one-line synopsis the Packages
#    indexes carry) of every package in /var/lib/apt/lists/*_Packages*
#    (apt-get update first when there are none), one package per name,
#    lower-cased, punctuation to spaces; packages whose text repeats an
#    earlier one are dropped, so the data holds no duplicate vectors.
# 2. fastText (Debian's fasttext, installed when missing) trains a skipgram
#    model on that corpus: -dim 128 -epoch 5 -minCount 2 -thread 1 -seed 1;
#    one thread and a fixed seed make the model, hence the data, the same on
#    every run on the same package lists.
# 3. print-sentence-vectors embeds each package's text; bench/vecs.py scales
#    the vectors to unit length and holds out 1,000 packages (seeded choice)
#    as queries.
# 4. bench/groundtruth --metric cosine: the exact 100 nearest base vectors
#    of every query.
#
#    -> data/text/base.fvecs, data/text/query.fvecs, data/text/gt100.ivecs
#       (+ base.names / query.names: the packages, row by row)
#
# Idempotent: when the three files exist and the stamp records the same
# package lists and settings, nothing is done. Outputs are written under
# temporary names and renamed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-${RV_BUILD_DIR:-build}}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
out="$root/data/text"
DIM=128
EPOCH=5
MINCOUNT=2
NQ=1000
SEED=1
GT_K=100

die() {
	echo "textdata.sh: $*" >&2
	exit 1
}

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

lists() {
	ls /var/lib/apt/lists/*_Packages* 2>/dev/null | grep -v '\.diff' || true
}

[ -n "$(lists)" ] || {
	echo "textdata.sh: no apt package lists; running apt-get update" >&2
	as_root apt-get update -qq >&2 || die "apt-get update failed"
}
[ -n "$(lists)" ] || die "still no /var/lib/apt/lists/*_Packages after apt-get update"
command -v fasttext >/dev/null 2>&1 || {
	echo "textdata.sh: installing Debian's fasttext" >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fasttext >&2 ||
		die "cannot install fasttext"
}
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import numpy' 2>/dev/null ||
	die "/usr/bin/python3 with numpy is needed (scripts/setup.sh bench)"

# What the data depends on: the lists' contents and every setting.
stamp="lists=$(lists | xargs cat | sha1sum | cut -c1-16) dim=$DIM epoch=$EPOCH minCount=$MINCOUNT nq=$NQ seed=$SEED k=$GT_K"
if [ -s "$out/base.fvecs" ] && [ -s "$out/query.fvecs" ] && [ -s "$out/gt100.ivecs" ] &&
	[ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi

mkdir -p "$out"
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Package<TAB>text, first occurrence of each name and of each text.
for f in $(lists); do
	/usr/lib/apt/apt-helper cat-file "$f"
	echo
done | awk '
	/^Package: / { pkg = substr($0, 10) }
	/^Description: / {
		d = tolower(substr($0, 14))
		gsub(/[^a-z0-9+]+/, " ", d)
		gsub(/^ +| +$/, "", d)
		if (d != "" && !(pkg in seen_pkg) && !(d in seen_text)) {
			seen_pkg[pkg] = 1
			seen_text[d] = 1
			print pkg "\t" d
		}
	}' >"$work/pkgs.tsv"
cut -f1 "$work/pkgs.tsv" >"$work/names.txt"
cut -f2 "$work/pkgs.tsv" >"$work/corpus.txt"
echo "textdata.sh: $(wc -l <"$work/corpus.txt") package descriptions, $(wc -w <"$work/corpus.txt") words" >&2

t0=$(date +%s)
fasttext skipgram -input "$work/corpus.txt" -output "$work/model" -dim $DIM -epoch $EPOCH \
	-minCount $MINCOUNT -thread 1 -seed $SEED -verbose 0 >&2 || die "fasttext skipgram failed"
echo "textdata.sh: fasttext skipgram trained in $(($(date +%s) - t0)) s" >&2
fasttext print-sentence-vectors "$work/model.bin" <"$work/corpus.txt" >"$work/vectors.txt" ||
	die "fasttext print-sentence-vectors failed"
[ "$(wc -l <"$work/vectors.txt")" = "$(wc -l <"$work/names.txt")" ] ||
	die "print-sentence-vectors gave $(wc -l <"$work/vectors.txt") vectors for $(wc -l <"$work/names.txt") lines"
/usr/bin/python3 "$root/bench/vecs.py" text "$work/vectors.txt" "$work/names.txt" $NQ $SEED "$work" ||
	die "vecs.py failed"

gt=$build/bench/groundtruth
if ! [ -x "$gt" ] || ! [ "$gt" -nt "$root/bench/groundtruth.c" ]; then
	gt=$work/groundtruth
	cc -std=c11 -D_GNU_SOURCE -O3 -march=native -Wall -Wextra -pthread \
		"$root/bench/groundtruth.c" -o "$gt" -lm || die "cannot compile bench/groundtruth.c"
fi
"$gt" "$work/base.fvecs" "$work/query.fvecs" $GT_K "$work/gt100.ivecs" --metric cosine --check 5 >&2 ||
	die "groundtruth failed"

for f in base.fvecs query.fvecs base.names query.names gt100.ivecs; do
	mv -f "$work/$f" "$out/$f"
done
echo "$stamp" >"$out/stamp"
echo "textdata.sh: wrote data/text/{base,query}.fvecs and gt100.ivecs" >&2
