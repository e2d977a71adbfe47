#!/usr/bin/env bash
# Fetch and convert the real data sets that the demo, the real-data tests and
# the benchmarks use, into data/ at the repository root (not in git).
#
#   scripts/data.sh [fiori|fashion|all]      (default: all)
#
# fiori    SAP Fiori documentation embedded with all-MiniLM-L6-v2: 778 unit
#          vectors of dimension 384 with titles and categories, from the npm
#          package @sap-ux/fiori-docs-embeddings (pinned version and checksum).
#          -> data/fiori/fiori.jsonl  (id, vector, payload per line)
#             data/fiori/fiori.fvecs  (the vectors alone)
# fashion  Fashion-MNIST from the Debian package dataset-fashion-mnist: 60,000
#          train and 10,000 test images of 28x28 pixels as 784-d float vectors
#          of raw 0..255 values, and the exact 100 nearest train images (L2)
#          of every test image.
#          -> data/fashion-mnist-train.fvecs, data/fashion-mnist-test.fvecs,
#             data/fashion-mnist-gt100.ivecs
#
# Idempotent: a file that exists with the expected size is kept. Every output
# is written under a temporary name and renamed, so an interrupted run leaves
# nothing half-written behind. Quiet unless it has work to do; any failure
# stops the script with a message and a non-zero status.
#
# Environment: RV_BUILD_DIR (default build) is where a built bench/idx2fvecs or
# bench/groundtruth is looked for; otherwise they are compiled into data/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
data="$root/data"
build="${RV_BUILD_DIR:-$root/build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac

FIORI_PKG="@sap-ux/fiori-docs-embeddings"
FIORI_VERSION="1.2.6"
FIORI_SHA1="e17ac2e1f6d792efbb6079e2d242a94384740d11" # npm's dist.shasum of the tarball
FIORI_N=778
FIORI_DIM=384

FASHION_SRC="${RV_FASHION_DIR:-/usr/share/datasets/fashion-mnist}"
FASHION_TRAIN_N=60000
FASHION_TEST_N=10000
FASHION_DIM=784
GT_K=100

die() {
	echo "data.sh: $*" >&2
	exit 1
}

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 is not installed; run scripts/setup.sh ($2)"
}

# file_size PATH: bytes, or -1 when the file does not exist.
file_size() {
	if [ -f "$1" ]; then stat -c %s "$1"; else echo -1; fi
}

# complete PATH BYTES: the file exists with exactly the expected size.
complete() {
	[ "$(file_size "$1")" = "$2" ]
}

# tool NAME CFLAGS...: path of a usable bench/NAME.c binary: the build
# directory's when it is newer than the source, else one compiled into data/.
tool() {
	local name=$1
	shift
	local src="$root/bench/$name.c"
	[ -f "$src" ] || die "missing $src"
	if [ -x "$build/bench/$name" ] && [ "$build/bench/$name" -nt "$src" ]; then
		echo "$build/bench/$name"
		return
	fi
	local bin="$data/.$name"
	if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
		need cc "build-essential"
		cc -std=c11 -D_GNU_SOURCE -Wall -Wextra "$@" "$src" -o "$bin.tmp" "${LIBS[@]}" >&2 ||
			die "cannot compile $src"
		mv -f "$bin.tmp" "$bin"
	fi
	echo "$bin"
}

fetch_fiori() {
	local out="$data/fiori"
	local want_fvecs=$((FIORI_N * (4 + 4 * FIORI_DIM)))
	if complete "$out/fiori.fvecs" "$want_fvecs" && [ -s "$out/fiori.jsonl" ] &&
		[ "$(wc -l <"$out/fiori.jsonl")" = "$FIORI_N" ]; then
		return
	fi
	need node "nodejs"
	need npm "npm"
	mkdir -p "$out"
	local tgz="$out/sap-ux-fiori-docs-embeddings-$FIORI_VERSION.tgz"
	if [ ! -f "$tgz" ] || ! echo "$FIORI_SHA1  $tgz" | sha1sum -c --status; then
		echo "data.sh: fetching $FIORI_PKG@$FIORI_VERSION from the npm registry"
		local tmpd
		tmpd=$(mktemp -d "$out/.pack.XXXXXX")
		if ! (cd "$tmpd" && npm pack --silent "$FIORI_PKG@$FIORI_VERSION" >"$tmpd/log" 2>&1); then
			cat "$tmpd/log" >&2
			rm -rf "$tmpd"
			die "npm pack $FIORI_PKG@$FIORI_VERSION failed"
		fi
		local got
		got=$(ls "$tmpd"/*.tgz 2>/dev/null | head -n 1)
		[ -n "$got" ] || {
			rm -rf "$tmpd"
			die "npm pack produced no tarball"
		}
		if ! echo "$FIORI_SHA1  $got" | sha1sum -c --status; then
			rm -rf "$tmpd"
			die "$FIORI_PKG@$FIORI_VERSION: tarball checksum is not $FIORI_SHA1"
		fi
		mv -f "$got" "$tgz"
		rm -rf "$tmpd"
	fi
	echo "data.sh: converting $FIORI_PKG@$FIORI_VERSION into data/fiori/"
	local pkgdir
	pkgdir=$(mktemp -d "$out/.unpack.XXXXXX")
	tar -xzf "$tgz" -C "$pkgdir" || {
		rm -rf "$pkgdir"
		die "cannot unpack $tgz"
	}
	if ! node "$here/fiori.mjs" "$pkgdir/package" "$out"; then
		rm -rf "$pkgdir"
		die "conversion of $FIORI_PKG failed"
	fi
	rm -rf "$pkgdir"
	complete "$out/fiori.fvecs" "$want_fvecs" ||
		die "data/fiori/fiori.fvecs has $(file_size "$out/fiori.fvecs") bytes, expected $want_fvecs"
	[ "$(wc -l <"$out/fiori.jsonl")" = "$FIORI_N" ] ||
		die "data/fiori/fiori.jsonl does not have $FIORI_N lines"
}

fetch_fashion() {
	local train="$data/fashion-mnist-train.fvecs"
	local test="$data/fashion-mnist-test.fvecs"
	local gt="$data/fashion-mnist-gt100.ivecs"
	local row=$((4 + 4 * FASHION_DIM))
	local want_train=$((FASHION_TRAIN_N * row))
	local want_test=$((FASHION_TEST_N * row))
	local want_gt=$((FASHION_TEST_N * (4 + 4 * GT_K)))
	mkdir -p "$data"

	local name want src dst
	for name in train test; do
		if [ $name = train ]; then
			want=$want_train src="$FASHION_SRC/train-images-idx3-ubyte.gz" dst=$train
		else
			want=$want_test src="$FASHION_SRC/t10k-images-idx3-ubyte.gz" dst=$test
		fi
		complete "$dst" "$want" && continue
		[ -f "$src" ] || die "missing $src: install the Debian package dataset-fashion-mnist (scripts/setup.sh)"
		# A new vector file invalidates the ground truth computed from the old.
		rm -f "$gt"
		echo "data.sh: converting $(basename "$src") -> data/$(basename "$dst")"
		LIBS=(-lz)
		local conv
		conv=$(tool idx2fvecs -O2)
		"$conv" "$src" "$dst" || die "idx2fvecs failed on $src"
		complete "$dst" "$want" ||
			die "data/$(basename "$dst") has $(file_size "$dst") bytes, expected $want"
	done

	complete "$gt" "$want_gt" && return
	echo "data.sh: computing exact ground truth (100-NN of 10,000 test images among 60,000, L2)"
	LIBS=(-lpthread -lm)
	local gtbin
	gtbin=$(tool groundtruth -O3 -march=native -pthread)
	"$gtbin" "$train" "$test" "$GT_K" "$gt" --check 5 || die "groundtruth failed"
	complete "$gt" "$want_gt" ||
		die "data/$(basename "$gt") has $(file_size "$gt") bytes, expected $want_gt"
}

LIBS=()
what="${1:-all}"
case "$what" in
fiori) fetch_fiori ;;
fashion) fetch_fashion ;;
all)
	fetch_fiori
	fetch_fashion
	;;
-h | --help)
	sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	;;
*) die "unknown data set '$what' (fiori, fashion or all)" ;;
esac
