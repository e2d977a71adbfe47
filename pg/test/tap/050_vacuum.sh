#!/usr/bin/env bash
# VACUUM after heavy deletes: 10,000 rows under a ruhnsw index and the same
# under a ruivfflat index; 80% of them deleted, then VACUUM. Afterwards:
#  - every query still gets 10 rows, none of them deleted, with recall@10
#    against the exact order of the remaining rows of at least 0.95
#    (ruhnsw at the default ef_search, ruivfflat at probes 10 of 50 lists);
#  - 3,000 new rows go in (into the heap space the VACUUM freed): each is
#    found by its own vector, the index returns rows in the order of their
#    real distance (an index entry left behind for a deleted row would point
#    at a new row's reused slot and break that order), and recall holds;
#  - a scan that may return everything returns exactly the live rows.
. "$(dirname "$0")/lib.sh"
tap_setup

# 8 dimensions: every row must be found by its own vector, and in so few
# dimensions an HNSW graph reaches every element in practice; in 16 to 32
# about one element in 16,000 ends up with no path leading to it (HNSW's
# neighbour pruning, with or without a crash), which would make that check
# fail now and then for no fault of the code under test.
DIM=8
NBASE=10000
NMORE=3000
NQ=50

node_init main
node_start main

tapdata synth $NBASE $DIM 1 >"$TMP/base.tsv"
tapdata synth $NMORE $DIM 2 --id-start 100001 >"$TMP/more.tsv"
tapdata synth $NQ $DIM 3 >"$TMP/query.tsv"
node_psql main <<SQL
CREATE EXTENSION ruvector;
CREATE TABLE vh (id int PRIMARY KEY, v ruvector($DIM)) WITH (autovacuum_enabled = off);
CREATE TABLE vi (id int PRIMARY KEY, v ruvector($DIM)) WITH (autovacuum_enabled = off);
CREATE TABLE q (id int PRIMARY KEY, v ruvector($DIM));
\copy vh FROM '$TMP/base.tsv'
\copy vi FROM '$TMP/base.tsv'
\copy q FROM '$TMP/query.tsv'
CREATE INDEX vh_idx ON vh USING ruhnsw (v ruvector_l2_ops);
SQL

ivf_checks main
[ $WANT_IVF = 0 ] || node_psql main -c "CREATE INDEX vi_idx ON vi USING ruivfflat (v ruvector_l2_ops) WITH (lists = 50)"

t0=$(date +%s.%N)
node_psql main <<SQL
DELETE FROM vh WHERE id % 5 <> 0;
DELETE FROM vi WHERE id % 5 <> 0;
VACUUM vh;
VACUUM vi;
ANALYZE;
SQL
diag "deleted 80% and vacuumed in $(elapsed "$t0") s"

# answers_sql TABLE SETTINGS: SQL for a temporary table of every query's
# rows in the order the index returned them (rn), with their real distance.
answers_sql() {
	echo "$2
CREATE TEMP TABLE ans AS
SELECT q.id AS qid, r.rn, r.id, r.d
FROM q, LATERAL (SELECT s.id, s.v <-> q.v AS d, row_number() OVER () AS rn
                 FROM (SELECT id, v FROM $1 ORDER BY v <-> q.v LIMIT 10) s) r;"
}

# check_answers TABLE AM SETTINGS STAGE: 10 distinct rows per query, none
# of them deleted, in the order of their distance; recall@10.
check_answers() {
	local table=$1 am=$2 settings=$3 stage=$4
	is "$(node_psql main <<SQL | tail -n 1
$(answers_sql "$table" "$settings")
SELECT count(*) FILTER (WHERE n = 10) || '|' || (SELECT count(*) FROM ans WHERE id % 5 <> 0 AND id <= $NBASE)
       || '|' || (SELECT count(*) FROM (SELECT d < lag(d) OVER (PARTITION BY qid ORDER BY rn) AS back FROM ans) s WHERE back)
FROM (SELECT qid, count(DISTINCT id) AS n FROM ans GROUP BY qid) c;
SQL
)" "$NQ|0|0" "$table $stage: 10 distinct rows per query, no deleted row, in the order of their distance"
	num_ge "$(recall_of main "$table" q "$settings")" 0.95 "$table $stage: $am recall@10 over the remaining rows"
}

hset="SET enable_seqscan = off; SET enable_sort = off;"
iset="SET enable_seqscan = off; SET enable_sort = off; SET ruivfflat.probes = 10;"
uses_index main vh_idx "$hset" "SELECT id FROM vh ORDER BY v <-> (SELECT v FROM q WHERE id = 1) LIMIT 10" \
	"vh: the queries scan vh_idx"
[ $WANT_IVF = 0 ] || uses_index main vi_idx "$iset" "SELECT id FROM vi ORDER BY v <-> (SELECT v FROM q WHERE id = 1) LIMIT 10" \
	"vi: the queries scan vi_idx"
check_answers vh ruhnsw "$hset" "after the deletes"
[ $WANT_IVF = 0 ] || check_answers vi ruivfflat "$iset" "after the deletes"

blocks=$(node_psql main -c "SELECT pg_relation_size('vh') / current_setting('block_size')::int")
node_psql main <<SQL
\copy vh FROM '$TMP/more.tsv'
\copy vi FROM '$TMP/more.tsv'
ANALYZE;
SQL
reused=$(node_psql main -c "SELECT count(*) FROM vh WHERE id > 100000 AND (ctid::text::point)[0] < $blocks")
num_ge "$reused" 1000 "vh: new rows went into the heap space the VACUUM freed (they reuse deleted rows' slots)"
self_lookup main vh vh_idx ruhnsw "id > 100000"
check_answers vh ruhnsw "$hset" "after new inserts"
check_full_scan main vh vh_idx ruhnsw $((NBASE / 5 + NMORE))
if [ $WANT_IVF = 1 ]; then
	self_lookup main vi vi_idx ruivfflat "id > 100000"
	check_answers vi ruivfflat "$iset" "after new inserts"
	check_full_scan main vi vi_idx ruivfflat $((NBASE / 5 + NMORE))
fi

tap_done
