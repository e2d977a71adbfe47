#!/usr/bin/env bash
# The PostgreSQL extension's regression suite on a throwaway cluster:
# builds and installs pg/ (make -C pg install), starts a PostgreSQL server
# on 127.0.0.1 with its data, socket and log in a fresh temporary
# directory, runs pg_regress over pg/test/sql against it (--use-existing),
# stops the server and removes the directory; when pg_regress passed, runs
# the system-level tests pg/test/tap/run.sh (crash recovery, replication,
# concurrency, VACUUM, recall on Fashion-MNIST; each starts its own
# clusters). Exits with the first failing status, 0 when all passed.
# Leaves nothing behind but the installed extension.
#
#   scripts/pgtest.sh [TEST ...]      default: every pg/test/sql/*.sql, then
#                                     the TAP tests (not run when TESTs are
#                                     named, unless PGTEST_TAP=1)
#
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config);
# PGTEST_TAP=0|1 (skip or force the TAP tests); PGTEST_BUILD_DIR=DIR builds
# from a copy of pg/ in DIR instead of inside pg/ (for a shared work tree);
# RUVECTOR_TAP_ONLY=hnsw (the TAP tests leave out ruivfflat).
# Installing needs write access to the server's directories, so CI runs
# this as root; initdb refuses root, so then the cluster belongs to the
# `postgres` system user. Run as another user, the cluster is that user's.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

die() {
	echo "pgtest: $*" >&2
	exit 2
}

[ -x "$PG_CONFIG" ] || die "no pg_config at $PG_CONFIG (install postgresql-15 and postgresql-server-dev-15, or set PG_CONFIG)"
BINDIR=$("$PG_CONFIG" --bindir)
PGXS=$("$PG_CONFIG" --pgxs)
PG_REGRESS=$(dirname "$PGXS")/../test/regress/pg_regress
for tool in initdb pg_ctl psql createdb; do
	[ -x "$BINDIR/$tool" ] || die "no $tool in $BINDIR (install postgresql-15)"
done
[ -x "$PG_REGRESS" ] || die "no pg_regress at $PG_REGRESS (install postgresql-server-dev-15)"
[ -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ] ||
	die "no server headers in $("$PG_CONFIG" --includedir-server) (install postgresql-server-dev-15)"

# Who owns the cluster: initdb will not run as root.
if [ "$(id -u)" -eq 0 ]; then
	id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (from postgresql-common)"
	DBUSER=postgres
	as_db() { runuser -u postgres -- "$@"; }
else
	DBUSER=$(id -un)
	as_db() { "$@"; }
fi

# Build and install; a clear message first when the server's directories
# (or the build directory) are not writable.
PKGLIB=$("$PG_CONFIG" --pkglibdir)
SHARE=$("$PG_CONFIG" --sharedir)
if [ ! -w "$PKGLIB" ] || [ ! -w "$SHARE/extension" ]; then
	die "cannot write $PKGLIB and $SHARE/extension: run as root"
fi
BUILD=$ROOT/pg
if [ -n "${PGTEST_BUILD_DIR:-}" ]; then
	# A copy of the sources; RV_ROOT points the copy's Makefile back here.
	BUILD=$PGTEST_BUILD_DIR
	mkdir -p "$BUILD" || die "cannot create $BUILD"
	# Objects go too: the copy keeps the sources' times, so an object newer
	# than an edited source would survive the rebuild.
	rm -rf "$BUILD"/src/*.c "$BUILD"/src/*.h "$BUILD"/src/*.o "$BUILD/sql" "$BUILD/test"
	tar -C "$ROOT/pg" --exclude='*.o' --exclude='*.so' --exclude=./simd -cf - . | tar -C "$BUILD" -xpf - ||
		die "cannot copy pg/ to $BUILD"
fi
[ -w "$BUILD" ] || die "cannot write the build directory $BUILD"
make -s -C "$BUILD" RV_ROOT="$ROOT" PG_CONFIG="$PG_CONFIG" >/dev/null || die "building pg/ failed"
make -s -C "$BUILD" RV_ROOT="$ROOT" PG_CONFIG="$PG_CONFIG" install >/dev/null || die "make -C pg install failed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ruvector-pgtest.XXXXXX")
DATA=$TMP/data
STARTED=0
cleanup() {
	local rc=$?
	if [ "$STARTED" -eq 1 ]; then
		as_db "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The test files are copied so the cluster's user can read them and
# pg_regress writes its results inside the temporary directory.
mkdir -p "$TMP/test" "$TMP/out" "$TMP/sock"
cp -r "$ROOT/pg/test/sql" "$ROOT/pg/test/expected" "$TMP/test/"
[ "$DBUSER" = "$(id -un)" ] || chown -R "$DBUSER" "$TMP"
chmod 700 "$TMP"

as_db "$BINDIR/initdb" -D "$DATA" -U "$DBUSER" -A trust --no-locale -E UTF8 >"$TMP/initdb.log" 2>&1 ||
	{ cat "$TMP/initdb.log" >&2; die "initdb failed"; }

# A free port: try a few random ones, since another run (or server) may
# hold the first; the server only listens on loopback.
PORT=
for _ in 1 2 3 4 5 6 7 8; do
	p=$((20000 + RANDOM % 30000))
	if as_db "$BINDIR/pg_ctl" -D "$DATA" -l "$TMP/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $p -c unix_socket_directories='$TMP/sock' -c fsync=off -c max_parallel_workers_per_gather=2" \
		start >/dev/null 2>&1; then
		PORT=$p
		STARTED=1
		break
	fi
done
[ -n "$PORT" ] || { cat "$TMP/server.log" >&2 || true; die "the server did not start"; }

export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=$DBUSER
as_db env PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER "$BINDIR/createdb" ruvector_regression

RUN_TAP=${PGTEST_TAP:-1}
if [ $# -gt 0 ]; then
	RUN_TAP=${PGTEST_TAP:-0}
	TESTS=("$@")
else
	TESTS=()
	for f in "$ROOT"/pg/test/sql/*.sql; do
		t=$(basename "$f" .sql)
		TESTS+=("$t")
	done
fi

set +e
(cd "$TMP" && as_db "$PG_REGRESS" --use-existing --bindir="$BINDIR" \
	--host=127.0.0.1 --port="$PORT" --user="$DBUSER" --dbname=ruvector_regression \
	--inputdir=test --outputdir=out "${TESTS[@]}")
STATUS=$?
set -e
if [ $STATUS -ne 0 ] && [ -f "$TMP/out/regression.diffs" ]; then
	echo "pgtest: differences from pg/test/expected:" >&2
	cat "$TMP/out/regression.diffs" >&2
fi
# Let the expected files be regenerated from a run: PGTEST_KEEP_RESULTS=DIR
# copies the actual outputs there before the directory goes.
if [ -n "${PGTEST_KEEP_RESULTS:-}" ] && [ -d "$TMP/out/results" ]; then
	mkdir -p "$PGTEST_KEEP_RESULTS"
	cp "$TMP/out/results/"*.out "$PGTEST_KEEP_RESULTS/"
fi
[ $STATUS -eq 0 ] || exit $STATUS

# The TAP tests start clusters of their own: this one is no longer needed.
if [ "$RUN_TAP" = 1 ]; then
	as_db "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
	STARTED=0
	PG_CONFIG="$PG_CONFIG" bash "$ROOT/pg/test/tap/run.sh" || exit 1
fi
exit 0
