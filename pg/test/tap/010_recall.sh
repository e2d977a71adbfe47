#!/usr/bin/env bash
# Recall on real data: 10,000 Fashion-MNIST train images (784-d raw pixels,
# scripts/data.sh) and 100 test images as queries. The exact top 10 comes
# from a sequential scan (enable_indexscan off), itself checked against
# numpy's float64 distances; then recall@10 of ruhnsw (ef_search 40, the
# default, and 100) and of ruivfflat (lists 100, probes 10 and 20) must be
# at least 0.95, through plans that really use the index (enable_seqscan is
# off for those queries: the planner's choice is not what this measures).
#
# A result counts as a hit when its distance is no larger than the exact
# 10th distance: images at equal distance are equally right answers.
. "$(dirname "$0")/lib.sh"
tap_setup

NBASE=10000
NQ=100
node_init main
node_start main
fashion_recall_setup main $NBASE $NQ

# query_into NODE TABLE: the top 10 of every query through whatever plan
# the planner picks, with the current settings given as SQL before it.
query_into() {
	local table=$1 settings=$2
	node_psql main <<SQL
SET enable_seqscan = off;
$settings
CREATE TABLE $table AS
SELECT q.id AS qid, r.id, r.d
FROM fq q, LATERAL (SELECT id, v <-> q.v AS d FROM fm ORDER BY v <-> q.v LIMIT 10) r;
SQL
}

plan_of() {
	node_psql main <<SQL
SET enable_seqscan = off;
$1
EXPLAIN (COSTS OFF)
SELECT q.id AS qid, r.id, r.d
FROM fq q, LATERAL (SELECT id, v <-> q.v AS d FROM fm ORDER BY v <-> q.v LIMIT 10) r;
SQL
}

# ---- ruhnsw ----
t0=$(date +%s.%N)
node_psql main -c "CREATE INDEX fm_hnsw ON fm USING ruhnsw (v ruvector_l2_ops) WITH (m = 16, ef_construction = 64)"
diag "ruhnsw build (m 16, ef_construction 64) on $NBASE x 784: $(elapsed "$t0") s"
plan=$(plan_of "")
if grep -q "Index Scan using fm_hnsw" <<<"$plan"; then ok 0 "the recall queries scan ruhnsw"; else
	ok 1 "the recall queries scan ruhnsw"
	diag "$plan"
fi
for ef in 40 100; do
	t0=$(date +%s.%N)
	query_into "hnsw_$ef" "SET ruhnsw.ef_search = $ef;"
	secs=$(elapsed "$t0")
	is "$(node_psql main -c "SELECT complete('hnsw_$ef')")" t "ruhnsw ef_search $ef: 10 distinct rows for every query"
	num_ge "$(node_psql main -c "SELECT recall('hnsw_$ef')")" 0.95 "ruhnsw recall@10 at ef_search $ef (queries: $secs s)"
done
node_psql main -c "DROP INDEX fm_hnsw"

# ---- ruivfflat ----
ivf_checks main
if [ $WANT_IVF = 1 ]; then
	t0=$(date +%s.%N)
	node_psql main -c "CREATE INDEX fm_ivf ON fm USING ruivfflat (v ruvector_l2_ops) WITH (lists = 100)"
	diag "ruivfflat build (lists 100) on $NBASE x 784: $(elapsed "$t0") s"
	plan=$(plan_of "SET ruivfflat.probes = 10;")
	if grep -q "Index Scan using fm_ivf" <<<"$plan"; then ok 0 "the recall queries scan ruivfflat"; else
		ok 1 "the recall queries scan ruivfflat"
		diag "$plan"
	fi
	for probes in 10 20; do
		t0=$(date +%s.%N)
		query_into "ivf_$probes" "SET ruivfflat.probes = $probes;"
		secs=$(elapsed "$t0")
		is "$(node_psql main -c "SELECT complete('ivf_$probes')")" t \
			"ruivfflat probes $probes: 10 distinct rows for every query"
		num_ge "$(node_psql main -c "SELECT recall('ivf_$probes')")" 0.95 \
			"ruivfflat recall@10 at probes $probes (queries: $secs s)"
	done
fi

tap_done
