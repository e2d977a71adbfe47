#!/usr/bin/env bash
# The data of the learning benchmark (bench/learn, docs/LEARNING.md).
#
#   scripts/learndata.sh [BUILD_DIR]
#
# Runs the project's data scripts for the vectors, then adds what the
# simulated users' hidden relevance needs, in data/learn/:
#
#   fashion-train.labels   60,000 class labels (0..9), one byte per image, in
#   fashion-test.labels    the row order of data/fashion-mnist-{train,test}.fvecs;
#                          from the idx1 label files of Debian's
#                          dataset-fashion-mnist (header checked, then dropped)
#   fiori.tsv              per row of data/fiori/fiori.fvecs: id, category,
#                          title (tabs and newlines turned to spaces)
#   debian.tsv             per package of the apt lists: name, section (the
#                          archive area "contrib/", "non-free/"... removed),
#                          and the comma-separated real packages it names in
#                          Depends, Pre-Depends and Recommends (versions,
#                          architecture qualifiers dropped; every alternative
#                          of "a | b" kept; a virtual package is replaced by
#                          the packages that Provide it). The first stanza of
#                          each name counts, in the order scripts/textdata.sh
#                          reads the lists, so it matches data/text/base.names.
#
# The vectors themselves: scripts/data.sh fiori, scripts/data.sh fashion and
# scripts/textdata.sh (data/fashion-mnist-*.fvecs, data/fiori/,
# data/text/{base,query}.{fvecs,names}). gnuplot (Debian's gnuplot-nox) is
# installed when missing, for the plots of `make bench-learn`.
#
# Idempotent: outputs that exist and whose stamp records the same inputs are
# kept. Every output is written under a temporary name and renamed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-${RV_BUILD_DIR:-build}}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
out="$root/data/learn"
FASHION_SRC="${RV_FASHION_DIR:-/usr/share/datasets/fashion-mnist}"

die() {
	echo "learndata.sh: $*" >&2
	exit 1
}

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

lists() { # the Packages indexes, as scripts/textdata.sh reads them
	local f
	for f in /var/lib/apt/lists/*_Packages*; do
		case $f in
		*.diff*) ;;
		*) [ -f "$f" ] && echo "$f" ;;
		esac
	done
	return 0
}

install_pkg() { # install_pkg COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 && return
	echo "learndata.sh: installing Debian's $2" >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2 ||
		die "cannot install $2"
}

# ---- the vectors, by the project's own scripts --------------------------
RV_BUILD_DIR="$build" "$here/data.sh" fiori
RV_BUILD_DIR="$build" "$here/data.sh" fashion
"$here/textdata.sh" "$build"
install_pkg gnuplot gnuplot-nox

mkdir -p "$out"
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- Fashion-MNIST labels -----------------------------------------------
# idx1: magic 0x00000801, count (big-endian u32), then one byte per label.
labels() { # labels SRC.gz COUNT DEST
	local src=$1 n=$2 dst=$3
	[ "$(stat -c %s "$dst" 2>/dev/null || echo -1)" = "$n" ] && return
	[ -f "$src" ] || die "missing $src: install the Debian package dataset-fashion-mnist (scripts/setup.sh)"
	local head
	head=$(gzip -dc "$src" | head -c 8 | od -An -tx1 | tr -d ' \n')
	[ "$head" = "$(printf '00000801%08x' "$n")" ] ||
		die "$src: header $head is not an idx1 file of $n labels"
	gzip -dc "$src" | tail -c +9 >"$work/labels"
	[ "$(stat -c %s "$work/labels")" = "$n" ] || die "$src: not $n labels"
	mv -f "$work/labels" "$dst"
	echo "learndata.sh: wrote data/learn/$(basename "$dst")" >&2
}
labels "$FASHION_SRC/train-labels-idx1-ubyte.gz" 60000 "$out/fashion-train.labels"
labels "$FASHION_SRC/t10k-labels-idx1-ubyte.gz" 10000 "$out/fashion-test.labels"

# ---- Fiori: ids, categories and titles ----------------------------------
jsonl="$root/data/fiori/fiori.jsonl"
if ! [ -s "$out/fiori.tsv" ] || [ "$jsonl" -nt "$out/fiori.tsv" ]; then
	node -e '
		const fs = require("fs");
		const clean = (s) => String(s ?? "").replace(/[\t\r\n]+/g, " ").trim();
		const rows = fs.readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.length);
		const out = rows.map((l) => {
			const r = JSON.parse(l);
			const p = r.payload || {};
			return [clean(r.id), clean(p.category), clean(p.title)].join("\t");
		});
		fs.writeFileSync(process.argv[2], out.join("\n") + "\n");
	' "$jsonl" "$work/fiori.tsv" || die "cannot read $jsonl"
	[ "$(wc -l <"$work/fiori.tsv")" = "$(wc -l <"$jsonl")" ] || die "fiori.tsv does not match $jsonl"
	mv -f "$work/fiori.tsv" "$out/fiori.tsv"
	echo "learndata.sh: wrote data/learn/fiori.tsv" >&2
fi

# ---- Debian: sections and the dependency graph --------------------------
stamp="lists=$(lists | xargs cat | sha1sum | cut -c1-16)"
if ! [ -s "$out/debian.tsv" ] || [ "$(cat "$out/debian.stamp" 2>/dev/null)" != "$stamp" ]; then
	for f in $(lists); do
		/usr/lib/apt/apt-helper cat-file "$f"
		echo
	done >"$work/Packages"
	# Pass 1 collects Provides (virtual -> real packages); pass 2 prints one
	# line per package with its relations resolved to real names.
	awk -F'\t' '
		function field(line, name) { return substr(line, length(name) + 3) }
		function flush() {
			if (pkg != "" && !(pkg in seen)) {
				seen[pkg] = 1
				order[++n] = pkg
				sect[pkg] = sec
				rels[pkg] = rel
				np = split(prov, pv, /,/)
				for (i = 1; i <= np; i++) {
					v = pv[i]
					sub(/\(.*/, "", v)
					gsub(/[ \t]/, "", v)
					if (v == "")
						continue
					# Test before assigning: some awks create the element
					# on the left-hand side first.
					had = v in provides
					provides[v] = had ? provides[v] "," pkg : pkg
				}
			}
			pkg = sec = rel = prov = ""
		}
		/^$/ { flush(); next }
		/^Package: / { pkg = field($0, "Package") }
		/^Section: / { sec = field($0, "Section"); sub(/^[a-z-]+\//, "", sec) }
		/^(Depends|Pre-Depends|Recommends): / {
			r = $0
			sub(/^[A-Za-z-]+: /, "", r)
			rel = rel == "" ? r : rel ", " r
		}
		/^Provides: / { prov = field($0, "Provides") }
		END {
			flush()
			for (j = 1; j <= n; j++) {
				p = order[j]
				m = split(rels[p], parts, /[,|]/)
				out = ""
				delete done
				for (i = 1; i <= m; i++) {
					d = parts[i]
					sub(/\(.*/, "", d)
					sub(/\[.*/, "", d)
					sub(/<.*/, "", d)
					gsub(/[ \t]/, "", d)
					sub(/:.*/, "", d)
					if (d == "" || d == p)
						continue
					if (d in seen)
						cand = d
					else if (d in provides)
						cand = provides[d]
					else
						continue
					k = split(cand, cs, /,/)
					for (c = 1; c <= k; c++)
						if (cs[c] != "" && cs[c] != p && !(cs[c] in done)) {
							done[cs[c]] = 1
							out = out == "" ? cs[c] : out "," cs[c]
						}
				}
				print p "\t" (sect[p] == "" ? "-" : sect[p]) "\t" out
			}
		}' "$work/Packages" >"$work/debian.tsv" || die "cannot parse the apt lists"
	[ -s "$work/debian.tsv" ] || die "no packages in the apt lists"
	mv -f "$work/debian.tsv" "$out/debian.tsv"
	echo "$stamp" >"$out/debian.stamp"
	echo "learndata.sh: wrote data/learn/debian.tsv ($(wc -l <"$out/debian.tsv") packages)" >&2
fi
