# Shared helpers of the system-level tests pg/test/tap/NNN_*.sh: throwaway
# PostgreSQL clusters and TAP output. A test script sources this file,
# calls tap_setup, starts the nodes it needs and ends with tap_done.
#
#   node_init NAME [SETTING ...]   initdb a cluster in the test's temporary
#                                  directory; settings go to its config
#   node_start NAME                start it on 127.0.0.1 and a free port
#   node_stop NAME [MODE]          pg_ctl stop (fast unless MODE)
#   node_psql NAME [PSQL ARGS]     psql -X -At with ON_ERROR_STOP on NAME
#   node_port NAME / node_data NAME / node_log NAME
#   node_standby PRIMARY NAME      pg_basebackup -R of PRIMARY, not started
#
#   ok COND_STATUS DESC / is GOT WANT DESC / num_ge GOT MIN DESC
#   ivf_checks NODE                WANT_IVF=1 when the ruivfflat checks run;
#                                  a missing ruivfflat is a failed check
#                                  (never a skip); RUVECTOR_TAP_ONLY=hnsw
#                                  leaves them out
#
# The clusters belong to the `postgres` system user when the tests run as
# root (initdb refuses root); psql runs as the calling user and connects
# over TCP to 127.0.0.1 as the cluster's superuser, so files it reads with
# \copy need no particular owner. Every node is stopped and the temporary
# directory removed when the script exits; TAP_KEEP=1 keeps the directory
# (and prints where) after a failure.
#
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config),
# PYTHON (default /usr/bin/python3, needs numpy), RUVECTOR_TAP_ONLY=hnsw
# (leave out every ruivfflat check while that access method is being
# written; the default runs them all).

set -euo pipefail

TAP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$TAP_DIR/../../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PYTHON=${PYTHON:-/usr/bin/python3}
TAP_NAME=$(basename "$0" .sh)

tap_bail() {
	echo "Bail out! $TAP_NAME: $*"
	exit 2
}

[ -x "$PG_CONFIG" ] || tap_bail "no pg_config at $PG_CONFIG (install postgresql-server-dev-15 or set PG_CONFIG)"
BINDIR=$("$PG_CONFIG" --bindir)
for _tool in initdb pg_ctl psql pg_basebackup; do
	[ -x "$BINDIR/$_tool" ] || tap_bail "no $_tool in $BINDIR (install postgresql-15)"
done
[ -f "$("$PG_CONFIG" --sharedir)/extension/ruvector.control" ] ||
	tap_bail "the ruvector extension is not installed (scripts/pgtest.sh installs it)"
"$PYTHON" -c 'import numpy' 2>/dev/null || tap_bail "$PYTHON cannot import numpy (install python3-numpy)"

if [ "$(id -u)" -eq 0 ]; then
	id postgres >/dev/null 2>&1 || tap_bail "running as root needs the 'postgres' system user"
	DBUSER=postgres
	as_db() { runuser -u postgres -- "$@"; }
else
	DBUSER=$(id -un)
	as_db() { "$@"; }
fi

TAP_N=0
TAP_FAILED=0
declare -A NODE_PORT=() NODE_RUNNING=()
NODES=()
TMP=

tap_cleanup() {
	local rc=$?
	local n i
	set +e
	# standbys first (they come later in the list): a primary going away
	# under a running standby only fills its log with connection errors
	for ((i = ${#NODES[@]} - 1; i >= 0; i--)); do
		n=${NODES[$i]}
		if [ "${NODE_RUNNING[$n]:-0}" = 1 ]; then
			as_db "$BINDIR/pg_ctl" -D "$TMP/$n/data" -m immediate -w stop >/dev/null 2>&1
		fi
	done
	# A failing run shows the end of every server log: a crash, an assertion
	# or an ERROR raised inside the extension shows up there first.
	if [ "$rc" -ne 0 ] || [ "$TAP_FAILED" -ne 0 ]; then
		for n in "${NODES[@]}"; do
			if [ -f "$TMP/$n/server.log" ]; then
				echo "# --- last lines of $n's server log ---"
				tail -n 25 "$TMP/$n/server.log" | sed 's/^/#   /'
			fi
		done
	fi
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		if [ "${TAP_KEEP:-0}" = 1 ] && { [ "$rc" -ne 0 ] || [ "$TAP_FAILED" -ne 0 ]; }; then
			echo "# kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$rc"
}

tap_setup() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/ruvector-tap.XXXXXX")
	chmod 755 "$TMP"
	trap tap_cleanup EXIT
	trap 'exit 130' INT TERM
	TAP_T0=$(date +%s.%N)
}

diag() {
	echo "# $*"
}

# ok STATUS DESC: STATUS 0 passes.
ok() {
	local status=$1
	shift
	TAP_N=$((TAP_N + 1))
	if [ "$status" -eq 0 ]; then
		echo "ok $TAP_N - $*"
	else
		echo "not ok $TAP_N - $*"
		TAP_FAILED=$((TAP_FAILED + 1))
	fi
	return 0
}

# is GOT WANT DESC: string equality.
is() {
	local got=$1 want=$2
	shift 2
	if [ "$got" = "$want" ]; then
		ok 0 "$*"
	else
		ok 1 "$*"
		diag "     got: '$got'"
		diag "expected: '$want'"
	fi
}

# num_ge GOT MIN DESC: GOT >= MIN as numbers (GOT may be a decimal).
num_ge() {
	local got=$1 min=$2
	shift 2
	if [ -n "$got" ] && awk -v g="$got" -v m="$min" 'BEGIN { exit !(g + 0 >= m + 0 && g ~ /^-?[0-9.eE+-]+$/) }'; then
		ok 0 "$* ($got >= $min)"
	else
		ok 1 "$*"
		diag "     got: '$got'"
		diag "expected: at least $min"
	fi
}

# tap_done: the plan line, the elapsed time, and the exit status.
tap_done() {
	local t1
	t1=$(date +%s.%N)
	echo "1..$TAP_N"
	diag "$TAP_NAME: $((TAP_N - TAP_FAILED)) of $TAP_N checks passed in $(awk -v a="$TAP_T0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
	[ "$TAP_FAILED" -eq 0 ] || exit 1
	exit 0
}

# elapsed T0: seconds since T0 (from `date +%s.%N`), one decimal.
elapsed() {
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

# ---- clusters ----

node_data() { echo "$TMP/$1/data"; }
node_log() { echo "$TMP/$1/server.log"; }
node_port() { echo "${NODE_PORT[$1]}"; }

# The node's own settings (port, socket directory) live in tap_node.conf in
# its data directory, included from postgresql.conf: a standby copied by
# pg_basebackup brings the include along and gets its own values written.
_node_conf() {
	local name=$1 port=$2
	printf "port = %s\nunix_socket_directories = '%s'\n" "$port" "$TMP/$name/sock" >"$TMP/$name/data/tap_node.conf"
	[ "$DBUSER" = "$(id -un)" ] || chown "$DBUSER" "$TMP/$name/data/tap_node.conf"
}

_node_dirs() {
	local name=$1
	mkdir -p "$TMP/$name/sock"
	[ "$DBUSER" = "$(id -un)" ] || chown "$DBUSER" "$TMP/$name" "$TMP/$name/sock"
	chmod 700 "$TMP/$name"
	NODES+=("$name")
}

node_init() {
	local name=$1
	shift
	_node_dirs "$name"
	as_db "$BINDIR/initdb" -D "$TMP/$name/data" -U "$DBUSER" -A trust --no-locale -E UTF8 \
		>"$TMP/$name/initdb.log" 2>&1 || {
		cat "$TMP/$name/initdb.log"
		tap_bail "initdb of $name failed"
	}
	{
		echo "listen_addresses = '127.0.0.1'"
		# Throwaway clusters: an immediate stop is no OS crash, so the kernel
		# still holds every write; fsync buys nothing here.
		echo "fsync = off"
		echo "shared_buffers = 128MB"
		echo "max_parallel_workers_per_gather = 0"
		echo "jit = off"
		echo "log_min_messages = warning"
		echo "log_line_prefix = '%m [%p] '"
		local s
		for s in "$@"; do echo "$s"; done
		echo "include_if_exists = 'tap_node.conf'"
	} >>"$TMP/$name/data/postgresql.conf"
}

# node_start NAME: the first start picks a free port (a few random tries,
# since another server may hold one); later starts keep it.
node_start() {
	local name=$1 p i tries=1
	[ -n "${NODE_PORT[$name]:-}" ] || tries=8
	for ((i = 0; i < tries; i++)); do
		p=${NODE_PORT[$name]:-$((20000 + RANDOM % 30000))}
		_node_conf "$name" "$p"
		if as_db "$BINDIR/pg_ctl" -D "$TMP/$name/data" -l "$TMP/$name/server.log" -w -t 120 start \
			>/dev/null 2>&1; then
			NODE_PORT[$name]=$p
			NODE_RUNNING[$name]=1
			return 0
		fi
		# Only a port conflict is worth another try.
		grep -q "could not bind\|could not create lock file\|Address already in use" "$TMP/$name/server.log" 2>/dev/null || break
	done
	tail -n 30 "$TMP/$name/server.log" 2>/dev/null || true
	tap_bail "node $name did not start"
}

node_stop() {
	local name=$1 mode=${2:-fast}
	as_db "$BINDIR/pg_ctl" -D "$TMP/$name/data" -m "$mode" -w -t 120 stop >/dev/null ||
		tap_bail "pg_ctl stop -m $mode of $name failed"
	NODE_RUNNING[$name]=0
}

node_psql() {
	local name=$1
	shift
	PGCONNECT_TIMEOUT=30 "$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 \
		-h 127.0.0.1 -p "${NODE_PORT[$name]}" -U "$DBUSER" -d postgres "$@"
}

# node_standby PRIMARY NAME: a streaming standby of the running PRIMARY
# (pg_basebackup -R writes primary_conninfo and standby.signal).
node_standby() {
	local primary=$1 name=$2
	_node_dirs "$name"
	as_db "$BINDIR/pg_basebackup" -h 127.0.0.1 -p "${NODE_PORT[$primary]}" -U "$DBUSER" \
		-D "$TMP/$name/data" -R -X stream -c fast >"$TMP/$name/basebackup.log" 2>&1 || {
		cat "$TMP/$name/basebackup.log"
		tap_bail "pg_basebackup of $primary failed"
	}
}

# ---- the ruivfflat access method ----

ivfflat_wanted() {
	[ "${RUVECTOR_TAP_ONLY:-}" != hnsw ]
}

# require_am NODE AMNAME: 0 when the access method exists (once the
# extension is created); otherwise one failed check saying so, so that a
# missing method fails the test.
require_am() {
	local node=$1 am=$2
	if [ "$(node_psql "$node" <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
SELECT count(*) FROM pg_am WHERE amname = '$am';
SQL
)" = 1 ]; then
		return 0
	fi
	ok 1 "access method $am exists (its checks cannot run without it)"
	return 1
}

# ivf_checks NODE: sets WANT_IVF to 1 when the ruivfflat parts of a test
# run: not under RUVECTOR_TAP_ONLY=hnsw, and only when NODE has the access
# method (its absence is a failed check).
ivf_checks() {
	WANT_IVF=0
	if ! ivfflat_wanted; then
		diag "ruivfflat checks left out (RUVECTOR_TAP_ONLY=hnsw)"
		return 0
	fi
	if require_am "$1" ruivfflat; then WANT_IVF=1; fi
}

# ---- data ----

# The Fashion-MNIST vectors of scripts/data.sh, made when missing.
fashion_files() {
	FASHION_TRAIN=$ROOT/data/fashion-mnist-train.fvecs
	FASHION_TEST=$ROOT/data/fashion-mnist-test.fvecs
	if [ ! -s "$FASHION_TRAIN" ] || [ ! -s "$FASHION_TEST" ]; then
		diag "preparing Fashion-MNIST with scripts/data.sh fashion"
		"$ROOT/scripts/data.sh" fashion >&2 || tap_bail "scripts/data.sh fashion failed"
	fi
}

tapdata() {
	"$PYTHON" "$TAP_DIR/tapdata.py" "$@"
}

# fashion_recall_setup NODE NBASE NQ: on a started NODE, the extension and
# tables fm (NBASE Fashion-MNIST train images) and fq (NQ test images),
# knn (numpy's exact float64 top 10), exact (the sequential scan's top 10:
# qid, id, d, rank) and kth (each query's exact 10th distance), the SQL
# functions recall(regclass) (hits of a result table (qid, id, d): rows no
# farther than the exact 10th distance, over 10 per query) and
# complete(regclass) (every query got 10 distinct rows), and the checks
# that the exact scan is complete and agrees with numpy.
fashion_recall_setup() {
	local node=$1 nbase=$2 nq=$3 t0
	fashion_files
	t0=$(date +%s.%N)
	tapdata fvecs "$FASHION_TRAIN" 0 "$nbase" >"$TMP/base.tsv"
	tapdata fvecs "$FASHION_TEST" 0 "$nq" >"$TMP/query.tsv"
	tapdata knn "$TMP/base.tsv" "$TMP/query.tsv" 10 >"$TMP/knn.tsv"
	diag "data prepared in $(elapsed "$t0") s"
	t0=$(date +%s.%N)
	node_psql "$node" <<SQL
CREATE EXTENSION ruvector;
CREATE TABLE fm (id int PRIMARY KEY, v ruvector(784));
CREATE TABLE fq (id int PRIMARY KEY, v ruvector(784));
CREATE TABLE knn (qid int, rank int, d float8);
\copy fm FROM '$TMP/base.tsv'
\copy fq FROM '$TMP/query.tsv'
\copy knn FROM '$TMP/knn.tsv'
ANALYZE fm;
ANALYZE fq;
SET enable_indexscan = off;
CREATE TABLE exact AS
SELECT q.id AS qid, r.id, r.d, row_number() OVER (PARTITION BY q.id ORDER BY r.d, r.id) AS rank
FROM fq q, LATERAL (SELECT id, v <-> q.v AS d FROM fm ORDER BY v <-> q.v LIMIT 10) r;
CREATE TABLE kth AS SELECT qid, max(d) AS d FROM exact GROUP BY qid;

CREATE FUNCTION recall(res regclass) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE r numeric;
BEGIN
	EXECUTE format('SELECT round(count(*) FILTER (WHERE x.d <= k.d * (1 + 1e-6))::numeric / (10 * (SELECT count(*) FROM fq)), 4)
	                FROM %s x JOIN kth k USING (qid)', res) INTO r;
	RETURN r;
END \$\$;
CREATE FUNCTION complete(res regclass) RETURNS boolean LANGUAGE plpgsql AS \$\$
DECLARE r boolean;
BEGIN
	EXECUTE format('SELECT count(*) = (SELECT count(*) FROM fq) AND bool_and(n = 10)
	                FROM (SELECT qid, count(DISTINCT id) AS n FROM %s GROUP BY qid) s', res) INTO r;
	RETURN r;
END \$\$;
SQL
	diag "loaded $nbase + $nq rows and the exact scan in $(elapsed "$t0") s"
	is "$(node_psql "$node" -c "SELECT count(*) FROM fm")" "$nbase" "all base rows loaded"
	is "$(node_psql "$node" -c "SELECT count(*) FROM exact")" "$((nq * 10))" "the exact scan gave 10 rows per query"
	# The baseline must itself be exact: the sequential scan's distances
	# agree with numpy's, rank by rank.
	is "$(node_psql "$node" -c "SELECT count(*) FROM exact e JOIN knn k USING (qid, rank)
	WHERE abs(e.d - k.d) > 1e-4 * greatest(k.d, 1)")" 0 \
		"sequential-scan distances match numpy's exact float64 top 10 for all $nq queries"
}

# ---- checks through an index ----

# scan_settings NODE AM: SET commands for a wide index scan of AM: ruhnsw
# with ef_search 200, ruivfflat with probes 20.
scan_settings() {
	case "$2" in
	ruhnsw) echo "SET enable_seqscan = off; SET enable_sort = off; SET ruhnsw.ef_search = 200;" ;;
	ruivfflat) echo "SET enable_seqscan = off; SET enable_sort = off; SET ruivfflat.probes = 20;" ;;
	*) tap_bail "scan_settings: unknown access method $2" ;;
	esac
}

# uses_index NODE INDEX SETTINGS QUERY DESC: one check that QUERY's plan
# scans INDEX (EXPLAIN shows "Index Scan using INDEX").
uses_index() {
	local node=$1 index=$2 settings=$3 query=$4 desc=$5 plan
	plan=$(node_psql "$node" <<SQL
$settings
EXPLAIN (COSTS OFF) $query
SQL
)
	if grep -q "Index Scan using $index " <<<"$plan"; then
		ok 0 "$desc"
	else
		ok 1 "$desc"
		diag "plan: $plan"
	fi
}

# self_lookup NODE TABLE INDEX AM [WHERE]: checks that every row of TABLE
# (id, v) matching WHERE comes back as one of the 5 nearest of its own
# vector, at distance 0, through INDEX (the vectors are distinct).
self_lookup() {
	local node=$1 table=$2 index=$3 am=$4 where=${5:-true} settings n misses
	settings=$(scan_settings "$node" "$am")
	uses_index "$node" "$index" "$settings" \
		"SELECT c.id FROM $table c WHERE NOT EXISTS (SELECT 1 FROM (SELECT id, v <-> c.v AS d FROM $table c2 ORDER BY c2.v <-> c.v LIMIT 5) r WHERE r.id = c.id AND r.d = 0)" \
		"$table: the self-lookup runs through $index"
	n=$(node_psql "$node" -c "SELECT count(*) FROM $table WHERE $where")
	misses=$(node_psql "$node" <<SQL
$settings
SELECT count(*) FROM $table c
WHERE $where AND NOT EXISTS (
	SELECT 1 FROM (SELECT id, v <-> c.v AS d FROM $table c2 ORDER BY c2.v <-> c.v LIMIT 5) r
	WHERE r.id = c.id AND r.d = 0);
SQL
)
	local which="each of the $n rows"
	[ "$where" = true ] || which="$which with $where"
	is "$misses" 0 "$table: $which is found by its own vector through $index"
}

# setting_exists NODE NAME: the extension defines the setting NAME.
setting_exists() {
	[ "$(node_psql "$1" <<SQL
LOAD 'ruvector';
SELECT count(*) FROM pg_settings WHERE name = '$2';
SQL
)" = 1 ]
}

# full_scan_count NODE TABLE INDEX AM: sets FULL_COUNT to "ROWS|DISTINCT",
# the rows and distinct ids that an index scan of INDEX ordered by the
# distance to the table's first vector returns under settings that let it
# return every row (ruivfflat: every list probed; ruhnsw: an iterative scan
# up to the whole table), after checking that the plan scans INDEX.
# FULL_COUNT stays empty when ruhnsw has no iterative scan (then no setting
# makes its scan return more than ruhnsw.ef_search rows).
full_scan_count() {
	local node=$1 table=$2 index=$3 am=$4 settings
	FULL_COUNT=
	case "$am" in
	ruivfflat)
		# the setting's upper bound: at least the number of lists
		settings="LOAD 'ruvector'; SET enable_seqscan = off; SET enable_sort = off; SELECT set_config('ruivfflat.probes', max_val, false) FROM pg_settings WHERE name = 'ruivfflat.probes';"
		;;
	ruhnsw)
		setting_exists "$node" ruhnsw.iterative_scan || return 0
		settings="LOAD 'ruvector'; SET enable_seqscan = off; SET enable_sort = off;
SELECT set_config('ruhnsw.iterative_scan', coalesce((SELECT e FROM unnest(enumvals) e WHERE e <> 'off' ORDER BY e = 'relaxed_order' DESC LIMIT 1), 'on'), false) FROM pg_settings WHERE name = 'ruhnsw.iterative_scan';
SELECT set_config('ruhnsw.max_scan_tuples', max_val, false) FROM pg_settings WHERE name = 'ruhnsw.max_scan_tuples';
SELECT set_config('ruhnsw.ef_search', max_val, false) FROM pg_settings WHERE name = 'ruhnsw.ef_search';"
		;;
	esac
	local q="SELECT count(*) || '|' || count(DISTINCT id) FROM (SELECT id FROM $table ORDER BY v <-> (SELECT v FROM $table ORDER BY id LIMIT 1) LIMIT 100000000) s"
	uses_index "$node" "$index" "$settings" "$q" "$table: the full scan runs through $index"
	FULL_COUNT=$(node_psql "$node" <<SQL | tail -n 1
$settings
$q;
SQL
)
}

# recall_of NODE TABLE QTABLE SETTINGS: recall@10 of the index scans of
# TABLE (id, v) for the queries of QTABLE (id, v) under SETTINGS, against
# the exact order of a sequential scan, as a decimal. A row counts as a hit
# when its distance is no larger than the exact 10th distance (rows at
# equal distance are equally right); a query's rows must be distinct.
recall_of() {
	local node=$1 table=$2 qtable=$3 settings=$4
	node_psql "$node" <<SQL | tail -n 1
CREATE TEMP TABLE recall_kth AS
SELECT q.id AS qid, max(r.d) AS d
FROM $qtable q, LATERAL (SELECT v <-> q.v AS d FROM $table ORDER BY l2_distance(v, q.v) LIMIT 10) r
GROUP BY q.id;
$settings
CREATE TEMP TABLE recall_got AS
SELECT q.id AS qid, r.id, r.d
FROM $qtable q, LATERAL (SELECT id, v <-> q.v AS d FROM $table ORDER BY v <-> q.v LIMIT 10) r;
SELECT round(count(DISTINCT (g.qid, g.id)) FILTER (WHERE g.d <= k.d * (1 + 1e-6))::numeric
             / (10 * (SELECT count(*) FROM $qtable)), 4)
FROM recall_got g JOIN recall_kth k USING (qid);
SQL
}

# check_full_scan NODE TABLE INDEX AM N: one check that an index scan able
# to return everything (see full_scan_count) returns each of TABLE's N rows
# once. Without an iterative ruhnsw scan, a scan at the largest ef_search
# must return that many distinct rows (or all N when fewer).
check_full_scan() {
	local node=$1 table=$2 index=$3 am=$4 n=$5 got
	full_scan_count "$node" "$table" "$index" "$am"
	if [ -n "$FULL_COUNT" ]; then
		is "$FULL_COUNT" "$n|$n" "$table: a $am scan that may return every row returns each of the $n rows once"
		return 0
	fi
	got=$(node_psql "$node" <<SQL | tail -n 1
SET enable_seqscan = off; SET enable_sort = off; SET ruhnsw.ef_search = 1000;
SELECT count(*) || '|' || count(DISTINCT id) FROM (SELECT id FROM $table ORDER BY v <-> (SELECT v FROM $table ORDER BY id LIMIT 1) LIMIT 100000000) s;
SQL
)
	local want=$((n < 1000 ? n : 1000))
	is "$got" "$want|$want" \
		"$table: a ruhnsw scan at ef_search 1000 returns that many distinct rows (this version has no ruhnsw.iterative_scan)"
}
