#!/usr/bin/env bash
# The extension's system-level tests: every pg/test/tap/NNN_*.sh (or the
# ones named), one after the other. Each starts and removes its own
# throwaway clusters and prints TAP; this prints their output, one result
# line per script with its time, and closes with "tap: N passed, N failed".
# Exits 1 when a script failed (or bailed out), 0 when all passed.
#
#   pg/test/tap/run.sh [SCRIPT ...]     e.g. run.sh 020_crash
#
# Installs nothing: the ruvector extension must already be installed in
# the server of PG_CONFIG (scripts/pgtest.sh builds, installs and then runs
# this). RUVECTOR_TAP_ONLY=hnsw leaves out the ruivfflat checks; by default
# a missing ruivfflat access method fails the scripts that test it. The
# scripts print TAP, so prove runs them as well:
#   prove --exec bash pg/test/tap/[0-9]*.sh
set -uo pipefail

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scripts=()
if [ $# -gt 0 ]; then
	for a in "$@"; do
		a=${a%.sh}
		a=${a##*/}
		[ -f "$dir/$a.sh" ] || {
			echo "tap: no test script $dir/$a.sh" >&2
			exit 2
		}
		scripts+=("$dir/$a.sh")
	done
else
	for f in "$dir"/[0-9]*.sh; do scripts+=("$f"); done
fi

passed=0
failed=0
summary=()
t_all=$(date +%s.%N)
for s in "${scripts[@]}"; do
	name=$(basename "$s" .sh)
	echo "=== $name"
	t0=$(date +%s.%N)
	bash "$s"
	rc=$?
	secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		summary+=("PASS  $name  ($secs s)")
	else
		failed=$((failed + 1))
		summary+=("FAIL  $name  ($secs s, exit $rc)")
	fi
done
echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "total $(awk -v a="$t_all" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
echo "tap: $passed passed, $failed failed"
[ $failed -eq 0 ]
