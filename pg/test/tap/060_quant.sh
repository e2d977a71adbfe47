#!/usr/bin/env bash
# ruhnsw with quantization = 'sq8' on real data: 10,000 Fashion-MNIST train
# images (784-d raw pixels, scripts/data.sh) and 100 test images as
# queries, as in 010_recall. The float index and the sq8 index are built
# with the same options (m 16, ef_construction 64); for each, recall@10
# against the exact top 10 (a sequential scan, itself checked against
# numpy's float64 distances), the query rate and pg_relation_size. The sq8
# index must reach recall@10 >= 0.95 at ef_search 40 (the default) and be
# smaller than the float index; its rows must come in exact distance
# order (its scan re-checks the codes' candidates against the heap).
# Last, rows inserted into the sq8 index survive a crash (immediate stop,
# WAL replay) and are found by their own vectors.
#
# A result counts as a hit when its distance is no larger than the exact
# 10th distance: images at equal distance are equally right answers.
. "$(dirname "$0")/lib.sh"
tap_setup

NBASE=10000
NQ=100
NINS=200
node_init main
node_start main
fashion_recall_setup main $NBASE $NQ
# rows inserted after the build: test images past the queries
tapdata fvecs "$FASHION_TEST" $NQ $NINS >"$TMP/ins.tsv"
node_psql main <<SQL
CREATE TABLE fi (id int PRIMARY KEY, v ruvector(784));
\copy fi FROM '$TMP/ins.tsv'
-- queries whose rows do not come in order of distance (rank is the
-- order the scan returned them in)
CREATE FUNCTION unsorted(res regclass) RETURNS bigint LANGUAGE plpgsql AS \$\$
DECLARE r bigint;
BEGIN
	EXECUTE format('SELECT count(DISTINCT qid) FROM (
	                  SELECT qid, d, lag(d) OVER (PARTITION BY qid ORDER BY rank) AS prev FROM %s) s
	                WHERE d < prev', res) INTO r;
	RETURN r;
END \$\$;
-- queries per second: every query REPS times, top 10, rows discarded
CREATE FUNCTION qps(reps int) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; n int := 0; q record;
BEGIN
	t0 := clock_timestamp();
	FOR i IN 1..reps LOOP
		FOR q IN SELECT v FROM fq LOOP
			PERFORM id FROM fm ORDER BY v <-> q.v LIMIT 10;
			n := n + 1;
		END LOOP;
	END LOOP;
	RETURN round(n / extract(epoch FROM clock_timestamp() - t0));
END \$\$;
SQL

# query_into TABLE SETTINGS: the top 10 of every query, in the order the
# scan returned them, through the plan the planner picks with SETTINGS.
query_into() {
	local table=$1 settings=$2
	node_psql main <<SQL
SET enable_seqscan = off;
$settings
CREATE TABLE $table AS
SELECT q.id AS qid, r.id, r.d, r.rank
FROM fq q, LATERAL (SELECT id, v <-> q.v AS d, row_number() OVER () AS rank
                    FROM (SELECT id, v FROM fm ORDER BY v <-> q.v LIMIT 10) s) r;
SQL
}

uses_fm_index() {
	uses_index main "$1" "SET enable_seqscan = off;" \
		"SELECT id FROM fm ORDER BY v <-> (SELECT v FROM fq WHERE id = 1) LIMIT 10" \
		"the recall queries scan $1"
}

# measure NAME OPTIONS: builds index NAME with OPTIONS, then recall@10 and
# the query rate at ef_search 40 and 100; sets SIZE_<NAME> and REC_<NAME>_40.
measure() {
	local name=$1 options=$2 qps rec
	t0=$(date +%s.%N)
	node_psql main -c "CREATE INDEX $name ON fm USING ruhnsw (v ruvector_l2_ops) WITH ($options)"
	diag "$name build ($options) on $NBASE x 784: $(elapsed "$t0") s"
	uses_fm_index "$name"
	printf -v "SIZE_$name" '%s' "$(node_psql main -c "SELECT pg_relation_size('$name')")"
	for ef in 40 100; do
		query_into "${name}_$ef" "SET ruhnsw.ef_search = $ef;"
		qps=$(node_psql main -c "SET enable_seqscan = off; SET ruhnsw.ef_search = $ef; SELECT qps(5)" | tail -n 1)
		rec=$(node_psql main -c "SELECT recall('${name}_$ef')")
		printf -v "REC_${name}_$ef" '%s' "$rec"
		is "$(node_psql main -c "SELECT complete('${name}_$ef')")" t "$name ef_search $ef: 10 distinct rows for every query"
		is "$(node_psql main -c "SELECT unsorted('${name}_$ef')")" 0 "$name ef_search $ef: every query's rows in exact distance order"
		diag "$name ef_search $ef: recall@10 $rec, $qps queries/s (one session, top 10)"
	done
}

# ---- the float index, for comparison ----
measure fm_float "m = 16, ef_construction = 64"
num_ge "$REC_fm_float_40" 0.95 "float index recall@10 at ef_search 40"
node_psql main -c "DROP INDEX fm_float"

# ---- sq8 ----
measure fm_sq8 "m = 16, ef_construction = 64, quantization = 'sq8'"
num_ge "$REC_fm_sq8_40" 0.95 "sq8 index recall@10 at ef_search 40"
num_ge "$REC_fm_sq8_100" 0.95 "sq8 index recall@10 at ef_search 100"
diag "index size: float $SIZE_fm_float bytes, sq8 $SIZE_fm_sq8 bytes ($(awk -v a="$SIZE_fm_sq8" -v b="$SIZE_fm_float" 'BEGIN { printf "%.2f", a / b }') of float)"
ok "$([ "$SIZE_fm_sq8" -lt "$SIZE_fm_float" ] && echo 0 || echo 1)" \
	"the sq8 index ($SIZE_fm_sq8 bytes) is smaller than the float index ($SIZE_fm_float bytes)"
# a 784-d vector takes 3,144 bytes, its code 796: well under half
ok "$([ $((SIZE_fm_sq8 * 2)) -lt "$SIZE_fm_float" ] && echo 0 || echo 1)" \
	"the sq8 index is less than half the float index"

# ---- inserts, a crash, WAL replay ----
node_psql main -c "CHECKPOINT"
node_psql main -c "INSERT INTO fm SELECT id + 100000, v FROM fi"
node_stop main immediate
log_lines=$(wc -l <"$(node_log main)")
node_start main
is "$(sed -n "$((log_lines + 1)),\$p" "$(node_log main)" | grep -c "redo done\|redo starts")" 2 \
	"the restart replayed the WAL (redo starts, redo done)"
is "$(node_psql main -c "SELECT count(*) FROM fm WHERE id > 100000")" "$NINS" "the $NINS inserted rows survived the crash"
self_lookup main fm fm_sq8 ruhnsw "id > 100000"
# the build's pages (quantizer pages included) came back too
query_into "after_crash" "SET ruhnsw.ef_search = 40;"
num_ge "$(node_psql main -c "SELECT recall('after_crash')")" 0.95 "sq8 recall@10 at ef_search 40 after the crash"

tap_done
