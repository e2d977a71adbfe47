#!/usr/bin/env bash
# The SQL benchmark of the PostgreSQL extension: the library benchmark's
# data through a SQL client, on a throwaway cluster.
#
#   bash bench/pg_bench.sh            -> docs/PG-BENCHMARKS.md (and printed)
#
# Per data set: COPY the base vectors into a table; the exact scan
# (enable_indexscan off) on a few queries; CREATE INDEX ... USING ruhnsw
# (m 16, ef_construction 64) and a sweep of ruhnsw.ef_search; the same with
# ruivfflat (lists 250) and a sweep of ruivfflat.probes. Each row of the
# report: build time, index size (pg_relation_size), recall@10 against the
# exact ground truth of the data set, queries per second of one connection
# running prepared statements in one psql session, p50 / p99 latency.
#
# Data sets: fashion (Fashion-MNIST, 60,000 x 784, L2; scripts/data.sh
# fashion makes it when missing) and, when scripts/textdata.sh has made it,
# text (58,910 x 128 fastText sentence vectors, cosine). Installs nothing:
# the extension must be installed (scripts/pgtest.sh does that), and a
# missing ruivfflat shows as a row saying so.
#
# Environment: PG_CONFIG; PGBENCH_SETS (default "fashion text"),
# PGBENCH_QUERIES (1000), PGBENCH_EXACT_QUERIES (100), PGBENCH_EF
# ("10 20 40 80 160 320"), PGBENCH_PROBES ("1 2 4 8 16 32 64"),
# PGBENCH_LISTS (250), PGBENCH_OUT (docs/PG-BENCHMARKS.md), PGBENCH_RESULTS
# (a file to keep the run's JSON lines in; the report can be written again
# from it with bench/pg_bench.py report).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The throwaway-cluster helpers of the system-level tests.
. "$BENCH_DIR/../pg/test/tap/lib.sh"
HELPER=$BENCH_DIR/pg_bench.py

SETS=${PGBENCH_SETS:-fashion text}
NQ=${PGBENCH_QUERIES:-1000}
NQ_EXACT=${PGBENCH_EXACT_QUERIES:-100}
EFS=${PGBENCH_EF:-10 20 40 80 160 320}
PROBES=${PGBENCH_PROBES:-1 2 4 8 16 32 64}
LISTS=${PGBENCH_LISTS:-250}
OUT=${PGBENCH_OUT:-$ROOT/docs/PG-BENCHMARKS.md}
NWARM=50

tap_setup
RESULTS=$TMP/results.jsonl
: >"$RESULTS"

say() { echo "pg_bench: $*" >&2; }
now() { date +%s.%N; }

SHARED_BUFFERS=2GB
node_init bench "shared_buffers = $SHARED_BUFFERS" "maintenance_work_mem = 2GB" "max_wal_size = 4GB" \
	"checkpoint_timeout = 30min" "autovacuum = off"
node_start bench
node_psql bench -c "CREATE EXTENSION ruvector; CREATE EXTENSION pg_prewarm;"
has_ivf=$(node_psql bench -c "SELECT count(*) FROM pg_am WHERE amname = 'ruivfflat'")

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
printf '{"kind":"meta","server":"PostgreSQL %s","extversion":"%s","cpu":"%s","cores":%s,"date":"%s","shared_buffers":"%s","load_start":%s}\n' \
	"$(node_psql bench -c "SHOW server_version" | cut -d' ' -f1)" \
	"$(node_psql bench -c "SELECT extversion FROM pg_extension WHERE extname = 'ruvector'")" \
	"${cpu//\"/}" "$(nproc)" "$(date -u +%Y-%m-%d)" "$SHARED_BUFFERS" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RESULTS"

# loop DATASET TABLE OP METHOD SETTING SQL NQUERIES: one timed query loop.
loop() {
	local ds=$1 table=$2 op=$3 method=$4 setting=$5 settings=$6 n=$7
	local d=$TMP/loop
	mkdir -p "$d"
	cat >"$d/loop.sql" <<SQL
$settings
PREPARE q(ruvector) AS SELECT string_agg(id::text, ',') FROM (SELECT id FROM $table ORDER BY v $op \$1 LIMIT 10) s;
\\o /dev/null
\\i $TMP/$ds.warm.sql
\\o $d/plan.txt
EXPLAIN (COSTS OFF) $(head -n 1 "$TMP/$ds.warm.sql")
\\o $d/results.txt
SELECT clock_timestamp() AS t0 \\gset
\\timing on
\\i $d/queries.sql
\\timing off
\\o $d/loop_s.txt
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz);
SQL
	head -n "$n" "$TMP/$ds.queries.sql" >"$d/queries.sql"
	node_psql bench -f "$d/loop.sql" >"$d/times.txt"
	local kind
	case "$method" in
	exact) kind="Seq Scan" ;;
	*) kind="Index Scan" ;;
	esac
	grep -q "$kind" "$d/plan.txt" || {
		cat "$d/plan.txt" >&2
		tap_bail "the $method loop of $ds ($setting) does not run a $kind"
	}
	local score
	score=$("$PYTHON" "$HELPER" score "$d/results.txt" "$d/times.txt" "${GT[$ds]}" 0 "$(cat "$d/loop_s.txt")")
	echo "{\"kind\":\"search\",\"dataset\":\"$ds\",\"method\":\"$method\",\"setting\":\"$setting\",${score#\{}" >>"$RESULTS"
	say "$ds $method $setting: $score"
}

prewarm() {
	node_psql bench >/dev/null <<SQL
SELECT pg_prewarm('$1');
SELECT pg_prewarm(reltoastrelid) FROM pg_class WHERE oid = '$1'::regclass AND reltoastrelid <> 0;
SQL
	[ -z "${2:-}" ] || node_psql bench -c "SELECT pg_prewarm('$2')" >/dev/null
}

# planner_choice DATASET TABLE OP AM: records the scan the planner picks by
# itself (default settings) for one query of the loop.
planner_choice() {
	local ds=$1 table=$2 op=$3 am=$4 plan scan
	plan=$(node_psql bench <<SQL
PREPARE q(ruvector) AS SELECT string_agg(id::text, ',') FROM (SELECT id FROM $table ORDER BY v $op \$1 LIMIT 10) s;
EXPLAIN (COSTS OFF) $(head -n 1 "$TMP/$ds.warm.sql")
SQL
)
	scan=$(grep -o "Index Scan\|Seq Scan" <<<"$plan" | head -n 1)
	echo "{\"kind\":\"planner\",\"dataset\":\"$ds\",\"index\":\"$am\",\"scan\":\"$scan\"}" >>"$RESULTS"
}

# build DATASET TABLE INDEX AM OPCLASS WITH: CREATE INDEX, timed; records
# its time and size. Fails (status 1) when the access method is missing.
build() {
	local ds=$1 table=$2 index=$3 am=$4 opclass=$5 with=$6 t0 secs bytes
	if [ "$am" = ruivfflat ] && [ "$has_ivf" != 1 ]; then
		echo "{\"kind\":\"build\",\"dataset\":\"$ds\",\"index\":\"ruivfflat (lists $LISTS)\",\"error\":\"no ruivfflat access method in this build\"}" >>"$RESULTS"
		say "$ds: no ruivfflat access method in this build"
		return 1
	fi
	t0=$(now)
	node_psql bench -c "CREATE INDEX $index ON $table USING $am (v $opclass) WITH ($with)"
	secs=$(elapsed "$t0")
	bytes=$(node_psql bench -c "SELECT pg_relation_size('$index')")
	echo "{\"kind\":\"build\",\"dataset\":\"$ds\",\"index\":\"$am ($with)\",\"build_s\":$secs,\"bytes\":$bytes}" >>"$RESULTS"
	say "$ds: $am ($with) built in $secs s, $bytes bytes"
}

declare -A GT=()

bench_set() {
	local ds=$1 base=$2 query=$3 gt=$4 metric=$5 note=$6
	local dim n op opclass table=t_$1 t0 load_s nq
	GT[$ds]=$gt
	dim=$(od -An -t d4 -N 4 "$base" | tr -d ' ')
	n=$(($(stat -c %s "$base") / (4 + 4 * dim)))
	local nquery=$(($(stat -c %s "$query") / (4 + 4 * dim)))
	nq=$((NQ < nquery - NWARM ? NQ : nquery - NWARM))
	case "$metric" in
	l2) op="<->" opclass=ruvector_l2_ops ;;
	cosine) op="<=>" opclass=ruvector_cosine_ops ;;
	esac
	say "$ds: loading $n x $dim"
	t0=$(now)
	node_psql bench -c "CREATE TABLE $table (id int PRIMARY KEY, v ruvector($dim))"
	"$PYTHON" "$HELPER" copy "$base" | node_psql bench -c "\\copy $table FROM STDIN"
	node_psql bench -c "VACUUM ANALYZE $table"
	load_s=$(elapsed "$t0")
	# measured queries from the first row; the warm-up from the last ones
	"$PYTHON" "$HELPER" queries "$query" 0 "$nq" >"$TMP/$ds.queries.sql"
	"$PYTHON" "$HELPER" queries "$query" $((nquery - NWARM)) $NWARM >"$TMP/$ds.warm.sql"
	printf '{"kind":"dataset","dataset":"%s","n":%s,"dim":%s,"metric":"%s","queries":%s,"load_s":%s,"table_mib":%s,"note":"%s"}\n' \
		"$ds" "$n" "$dim" "$metric" "$nq" "$load_s" \
		"$(node_psql bench -c "SELECT round(pg_total_relation_size('$table') / 1048576.0, 1)")" "${note//\"/}" >>"$RESULTS"

	prewarm "$table"
	loop "$ds" "$table" "$op" exact "sequential scan" "SET enable_indexscan = off; SET enable_bitmapscan = off;" "$NQ_EXACT"

	build "$ds" "$table" "${table}_hnsw" ruhnsw "$opclass" "m = 16, ef_construction = 64"
	planner_choice "$ds" "$table" "$op" ruhnsw
	prewarm "$table" "${table}_hnsw"
	for ef in $EFS; do
		loop "$ds" "$table" "$op" ruhnsw "ef_search $ef" "SET enable_seqscan = off; SET ruhnsw.ef_search = $ef;" "$nq"
	done
	node_psql bench -c "DROP INDEX ${table}_hnsw"

	if build "$ds" "$table" "${table}_ivf" ruivfflat "$opclass" "lists = $LISTS"; then
		planner_choice "$ds" "$table" "$op" ruivfflat
		prewarm "$table" "${table}_ivf"
		for p in $PROBES; do
			loop "$ds" "$table" "$op" ruivfflat "probes $p" "SET enable_seqscan = off; SET ruivfflat.probes = $p;" "$nq"
		done
		node_psql bench -c "DROP INDEX ${table}_ivf"
	fi
	node_psql bench -c "DROP TABLE $table"
}

# description of a data set from bench/'s list, when there
set_note() {
	awk -F'\t' -v s="$1" '$1 == s { print $8 }' "$ROOT/data/bench-sets.tsv" 2>/dev/null || true
}

for ds in $SETS; do
	case "$ds" in
	fashion)
		[ -s "$ROOT/data/fashion-mnist-gt100.ivecs" ] || "$ROOT/scripts/data.sh" fashion
		bench_set fashion "$ROOT/data/fashion-mnist-train.fvecs" "$ROOT/data/fashion-mnist-test.fvecs" \
			"$ROOT/data/fashion-mnist-gt100.ivecs" l2 "$(set_note fashion)"
		;;
	text)
		if [ -s "$ROOT/data/text/gt100.ivecs" ]; then
			bench_set text "$ROOT/data/text/base.fvecs" "$ROOT/data/text/query.fvecs" \
				"$ROOT/data/text/gt100.ivecs" cosine "$(set_note text)"
		else
			say "text: no data/text (scripts/textdata.sh makes it); left out"
		fi
		;;
	*) tap_bail "unknown data set $ds (fashion, text)" ;;
	esac
done

printf '{"kind":"meta_end","load_end":%s}\n' "$(cut -d' ' -f1 /proc/loadavg)" >>"$RESULTS"
# the end's load average goes into the meta record the report reads
"$PYTHON" - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
end = next(r for r in rows if r["kind"] == "meta_end")["load_end"]
with open(sys.argv[1], "w") as f:
    for r in rows:
        if r["kind"] == "meta":
            r["load_end"] = end
        if r["kind"] != "meta_end":
            f.write(json.dumps(r) + "\n")
PY
mkdir -p "$(dirname "$OUT")"
"$PYTHON" "$HELPER" report "$RESULTS" "$OUT" --library "$ROOT/data/bench-results.jsonl"
[ -z "${PGBENCH_RESULTS:-}" ] || cp "$RESULTS" "$PGBENCH_RESULTS"
say "wrote $OUT"
