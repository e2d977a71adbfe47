#!/usr/bin/env bash
# Crash recovery: three sessions insert one row per transaction into a
# table with a ruhnsw index, a fourth into a table with a ruivfflat index;
# after a checkpoint, in the middle, the server is stopped with `pg_ctl stop
# -m immediate` (no shutdown checkpoint: the next start replays the WAL).
# After the restart:
#  - every insert a client saw acknowledged is in the table;
#  - every row of each table is found by its own vector, at distance 0,
#    through its index (so no committed row lost its index entry and the
#    replayed pages link into the graph / lists);
#  - an index scan that may return everything returns each row exactly
#    once (ruivfflat with every list probed; ruhnsw with an iterative
#    scan when the extension has one);
#  - amcheck finds the heap and the primary key consistent, and the
#    server logged no error;
#  - the indexes take new rows, which are found as well.
. "$(dirname "$0")/lib.sh"
tap_setup

# 8 dimensions: every row must be found by its own vector, and in so few
# dimensions an HNSW graph reaches every element in practice; in 16 to 32
# about one element in 16,000 ends up with no path leading to it (HNSW's
# neighbour pruning, with or without a crash), which would make that check
# fail now and then for no fault of the code under test.
DIM=8
NINIT=2000
NSCRIPT=30000 # statements per session: far more than run before the crash

node_init main
node_start main

tapdata synth $NINIT $DIM 1 >"$TMP/init.tsv"
node_psql main <<SQL
CREATE EXTENSION ruvector;
CREATE EXTENSION amcheck;
CREATE TABLE ch (id bigint PRIMARY KEY, v ruvector($DIM));
\copy ch FROM '$TMP/init.tsv'
CREATE INDEX ch_idx ON ch USING ruhnsw (v ruvector_l2_ops);
CREATE TABLE ci (id bigint PRIMARY KEY, v ruvector($DIM));
\copy ci FROM '$TMP/init.tsv'
ANALYZE;
SQL

ivf_checks main
[ $WANT_IVF = 0 ] || node_psql main -c "CREATE INDEX ci_idx ON ci USING ruivfflat (v ruvector_l2_ops) WITH (lists = 20)"

# One script per session: single-row INSERTs with RETURNING, so that psql
# prints an id only once its transaction has committed.
sessions=(ch ch ch)
[ $WANT_IVF = 0 ] || sessions+=(ci)
pids=()
for s in "${!sessions[@]}"; do
	tapdata synth $NSCRIPT $DIM $((10 + s)) --id-start $(((s + 1) * 1000000)) |
		awk -F'\t' -v t="${sessions[$s]}" '{ printf "INSERT INTO %s VALUES (%s, '\''%s'\'') RETURNING id;\n", t, $1, $2 }' \
			>"$TMP/ins$s.sql"
done
t0=$(date +%s.%N)
for s in "${!sessions[@]}"; do
	node_psql main -f "$TMP/ins$s.sql" >"$TMP/acked$s.txt" 2>"$TMP/err$s.txt" &
	pids+=($!)
done

# Crash once every session is well under way: psql writes its output in
# blocks of some 500 ids, so each file having lines means each session has
# committed hundreds of rows.
for ((i = 0; i < 300; i++)); do
	sleep 0.1
	under_way=1
	for s in "${!sessions[@]}"; do
		[ "$(wc -l <"$TMP/acked$s.txt")" -ge 300 ] || under_way=0
	done
	[ $under_way = 1 ] && break
done
# A checkpoint in between: the restart replays what follows it, where the
# first change of a page is logged as a full image and later ones as
# generic-WAL deltas against it.
node_psql main -c "CHECKPOINT"
sleep 1
n_before=$(node_psql main -c "SELECT (SELECT count(*) FROM ch) || ' and ' || (SELECT count(*) FROM ci)")
node_stop main immediate
diag "crashed after $(elapsed "$t0") s of inserts (ch and ci held $n_before rows just before)"
for p in "${pids[@]}"; do wait "$p" || true; done

log_lines=$(wc -l <"$(node_log main)")
t0=$(date +%s.%N)
node_start main
diag "restart with WAL replay: $(elapsed "$t0") s"
is "$(sed -n "$((log_lines + 1)),\$p" "$(node_log main)" | grep -c "redo done\|redo starts")" 2 \
	"the restart replayed the WAL (redo starts, redo done)"

cat "$TMP"/acked*.txt >"$TMP/acked.txt"
for s in "${!sessions[@]}"; do
	n=$(wc -l <"$TMP/acked$s.txt")
	ok "$([ "$n" -gt 0 ] && [ "$n" -lt $NSCRIPT ] && echo 0 || echo 1)" \
		"session $s (${sessions[$s]}) was stopped in the middle: $n of $NSCRIPT inserts acknowledged"
done
node_psql main <<SQL
CREATE TABLE acked (id bigint);
\copy acked FROM '$TMP/acked.txt'
SQL
is "$(node_psql main -c "SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM ch WHERE id = a.id)
	AND NOT EXISTS (SELECT 1 FROM ci WHERE id = a.id)")" 0 \
	"every acknowledged insert ($(wc -l <"$TMP/acked.txt") of them) survived the crash"

t0=$(date +%s.%N)
self_lookup main ch ch_idx ruhnsw
diag "ch self-lookup: $(elapsed "$t0") s"
check_full_scan main ch ch_idx ruhnsw "$(node_psql main -c "SELECT count(*) FROM ch")"
if [ $WANT_IVF = 1 ]; then
	self_lookup main ci ci_idx ruivfflat
	check_full_scan main ci ci_idx ruivfflat "$(node_psql main -c "SELECT count(*) FROM ci")"
fi

is "$(node_psql main -c "SELECT count(*) FROM verify_heapam('ch')") $(node_psql main -c "SELECT count(*) FROM verify_heapam('ci')")" "0 0" \
	"amcheck: verify_heapam finds no corruption in either table"
is "$(node_psql main -c "SELECT bt_index_check('ch_pkey', true)::text || bt_index_check('ci_pkey', true)::text")" "" \
	"amcheck: the primary keys hold exactly the heap's rows (bt_index_check heapallindexed)"

# The indexes go on taking rows after the recovery.
tapdata synth 300 $DIM 99 --id-start 9000000 >"$TMP/after.tsv"
node_psql main <<SQL
\copy ch FROM '$TMP/after.tsv'
\copy ci FROM '$TMP/after.tsv'
SQL
self_lookup main ch ch_idx ruhnsw "id >= 9000000"
[ $WANT_IVF = 0 ] || self_lookup main ci ci_idx ruivfflat "id >= 9000000"

errors=$(sed -n "$((log_lines + 1)),\$p" "$(node_log main)" | grep -E "ERROR|PANIC|FATAL|WARNING" || true)
is "$errors" "" "no error, warning or panic in the server log since the restart"

tap_done
