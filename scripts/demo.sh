#!/usr/bin/env bash
# Run the demo (examples/demo.c) on the Fiori embeddings that
# `scripts/data.sh fiori` prepares: build a collection in
# BUILD_DIR/demo/fiori.rvf, reopen it, show similar documents, filtered
# searches, recall against an exact scan and timings.
#
#   scripts/demo.sh [BUILD_DIR]        (default: build)
#
# Exits non-zero when the data or the demo binary is missing or the demo
# reports a failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build="${1:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac

data="$root/data/fiori/fiori.jsonl"
bin="$build/examples/demo"

[ -f "$data" ] || {
	echo "demo.sh: missing $data; run ./scripts/data.sh fiori" >&2
	exit 1
}
[ -x "$bin" ] || {
	echo "demo.sh: missing $bin; build first (make build, or cmake --build $build)" >&2
	exit 1
}
mkdir -p "$build/demo"
exec "$bin" --data "$data" --db "$build/demo/fiori.rvf"
