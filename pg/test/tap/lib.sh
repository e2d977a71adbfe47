# Shared helpers of the system-level tests in pg/test/tap/t/: throwaway
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
#   require_am AMNAME              0 when the access method exists; else
#                                  records a failure (never a skip)
#   ivfflat_wanted                 false only under RUVECTOR_TAP_ONLY=hnsw
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
	local n
	set +e
	for n in "${NODES[@]}"; do
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
	local name=$1 p tries=1
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

# require_am NODE AMNAME: 0 when the access method exists; otherwise one
# failed check saying so, so that a missing method fails the test.
require_am() {
	local node=$1 am=$2
	if [ "$(node_psql "$node" -c "SELECT count(*) FROM pg_am WHERE amname = '$am'")" = 1 ]; then
		return 0
	fi
	ok 1 "access method $am exists (its checks cannot run without it)"
	return 1
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
