#!/usr/bin/env bash
# Concurrent inserts: four connections insert at the same time, one row per
# transaction, alternating between a table with a ruhnsw index (built on
# the empty table: the whole graph comes from these inserts) and one with
# a ruivfflat index (built on a first 1,000 rows). Afterwards:
#  - each table has every row once, and every row is found by its own
#    vector through its index (no insert lost its index entry or linked it
#    where no search reaches);
#  - a ruivfflat scan over every list returns each row once (and ruhnsw's
#    iterative scan, when the extension has one);
#  - recall@10 of 50 queries against the exact order is at least 0.95
#    (ruhnsw at the default ef_search, ruivfflat at probes 10 of 20 lists).
. "$(dirname "$0")/lib.sh"
tap_setup

# 8 dimensions: every row must be found by its own vector, and in so few
# dimensions an HNSW graph reaches every element in practice; in 16 to 32
# about one element in 16,000 ends up with no path leading to it (HNSW's
# neighbour pruning, with or without a crash), which would make that check
# fail now and then for no fault of the code under test.
DIM=8
NINIT=1000
NSESS=4
NPER=3000
NQ=50

node_init main
node_start main

tapdata synth $NINIT $DIM 1 --id-start 1 >"$TMP/init.tsv"
tapdata synth $NQ $DIM 2 >"$TMP/query.tsv"
node_psql main <<SQL
CREATE EXTENSION ruvector;
CREATE TABLE ch (id int PRIMARY KEY, v ruvector($DIM));
CREATE INDEX ch_idx ON ch USING ruhnsw (v ruvector_l2_ops);
CREATE TABLE ci (id int PRIMARY KEY, v ruvector($DIM));
\copy ci FROM '$TMP/init.tsv'
CREATE TABLE q (id int PRIMARY KEY, v ruvector($DIM));
\copy q FROM '$TMP/query.tsv'
SQL

ivf_checks main
[ $WANT_IVF = 0 ] || node_psql main -c "CREATE INDEX ci_idx ON ci USING ruivfflat (v ruvector_l2_ops) WITH (lists = 20)"

pids=()
for ((s = 0; s < NSESS; s++)); do
	tapdata synth $NPER $DIM $((10 + s)) --id-start $(((s + 1) * 100000)) |
		awk -F'\t' '{ printf "INSERT INTO ch VALUES (%s, '\''%s'\'');\nINSERT INTO ci VALUES (%s, '\''%s'\'');\n", $1, $2, $1, $2 }' \
			>"$TMP/ins$s.sql"
done
t0=$(date +%s.%N)
for ((s = 0; s < NSESS; s++)); do
	node_psql main -f "$TMP/ins$s.sql" >"$TMP/out$s.txt" 2>&1 &
	pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
secs=$(elapsed "$t0")
is "$failed" 0 "all $NSESS inserting sessions succeeded ($((NSESS * NPER * 2)) inserts in $secs s)"
[ "$failed" = 0 ] || cat "$TMP"/out*.txt | head -n 20 | sed 's/^/# /'
node_psql main -c "ANALYZE"

is "$(node_psql main -c "SELECT count(*), count(DISTINCT id) FROM ch")" "$((NSESS * NPER))|$((NSESS * NPER))" \
	"ch holds every inserted row once"
is "$(node_psql main -c "SELECT count(*), count(DISTINCT id) FROM ci")" "$((NINIT + NSESS * NPER))|$((NINIT + NSESS * NPER))" \
	"ci holds every inserted row once"

t0=$(date +%s.%N)
self_lookup main ch ch_idx ruhnsw
diag "ch self-lookup: $(elapsed "$t0") s"
check_full_scan main ch ch_idx ruhnsw $((NSESS * NPER))
num_ge "$(recall_of main ch q "SET enable_seqscan = off; SET enable_sort = off;")" 0.95 \
	"ch: ruhnsw recall@10 at the default ef_search after concurrent inserts"

if [ $WANT_IVF = 1 ]; then
	self_lookup main ci ci_idx ruivfflat
	check_full_scan main ci ci_idx ruivfflat $((NINIT + NSESS * NPER))
	num_ge "$(recall_of main ci q "SET enable_seqscan = off; SET enable_sort = off; SET ruivfflat.probes = 10;")" 0.95 \
		"ci: ruivfflat recall@10 at probes 10 after concurrent inserts"
fi

tap_done
