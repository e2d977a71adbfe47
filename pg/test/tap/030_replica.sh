#!/usr/bin/env bash
# Streaming replication: a standby made with pg_basebackup -R from a
# primary that holds only the tables; then, on the primary, the ruhnsw and
# ruivfflat indexes are built, rows inserted into them one statement at a
# time, some deleted and vacuumed. Once the standby has replayed the
# primary's WAL position:
#  - it has the same rows;
#  - for 20 queries its index scans (EXPLAIN shows them) return the same
#    top 10 as the primary's, in the same order, for both access methods;
#  - those answers are good ones (recall@10 against the exact order);
#  - no deleted row comes back on either node.
. "$(dirname "$0")/lib.sh"
tap_setup

DIM=32
NBASE=5000
NMORE=1500
NQ=20

node_init primary "wal_level = replica" "max_wal_senders = 4" "wal_keep_size = 256MB"
node_start primary

tapdata synth $NBASE $DIM 1 >"$TMP/base.tsv"
tapdata synth $NMORE $DIM 2 --id-start 100001 >"$TMP/more.tsv"
tapdata synth $NQ $DIM 3 >"$TMP/query.tsv"
node_psql primary <<SQL
CREATE EXTENSION ruvector;
CREATE TABLE rh (id int PRIMARY KEY, v ruvector($DIM));
CREATE TABLE ri (id int PRIMARY KEY, v ruvector($DIM));
CREATE TABLE rq (id int PRIMARY KEY, v ruvector($DIM));
\copy rh FROM '$TMP/base.tsv'
\copy ri FROM '$TMP/base.tsv'
\copy rq FROM '$TMP/query.tsv'
SQL

ivf_checks primary

t0=$(date +%s.%N)
node_standby primary standby
node_start standby
diag "standby made and started in $(elapsed "$t0") s"
is "$(node_psql standby -c "SELECT pg_is_in_recovery()")" t "the standby runs in recovery"

# Everything the indexes get happens after the base backup: the standby
# knows them only from the WAL stream.
node_psql primary -c "CREATE INDEX rh_idx ON rh USING ruhnsw (v ruvector_l2_ops)"
[ $WANT_IVF = 0 ] || node_psql primary -c "CREATE INDEX ri_idx ON ri USING ruivfflat (v ruvector_l2_ops) WITH (lists = 50)"
awk -F'\t' '{ printf "INSERT INTO rh VALUES (%s, '\''%s'\'');\nINSERT INTO ri VALUES (%s, '\''%s'\'');\n", $1, $2, $1, $2 }' \
	"$TMP/more.tsv" >"$TMP/more.sql"
node_psql primary -f "$TMP/more.sql"
node_psql primary <<SQL
DELETE FROM rh WHERE id % 10 = 0;
DELETE FROM ri WHERE id % 10 = 0;
VACUUM rh;
VACUUM ri;
ANALYZE;
SQL

lsn=$(node_psql primary -c "SELECT pg_current_wal_lsn()")
t0=$(date +%s.%N)
caught_up=1
for ((i = 0; i < 600; i++)); do
	if [ "$(node_psql standby -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ]; then
		caught_up=0
		break
	fi
	sleep 0.1
done
ok $caught_up "the standby replayed up to the primary's $lsn ($(elapsed "$t0") s)"

for t in rh ri; do
	is "$(node_psql standby -c "SELECT count(*) FROM $t")" "$(node_psql primary -c "SELECT count(*) FROM $t")" \
		"$t: the standby has the primary's rows"
done

# top10 NODE TABLE SETTINGS: qid, rank, id of the 10 nearest rows of every
# query (ties in distance ordered by id).
top10() {
	node_psql "$1" <<SQL | grep -v '^SET$' || true
$3
SELECT q.id, row_number() OVER (PARTITION BY q.id ORDER BY r.d, r.id), r.id
FROM rq q, LATERAL (SELECT id, v <-> q.v AS d FROM $2 ORDER BY v <-> q.v LIMIT 10) r
ORDER BY 1, 2;
SQL
}

compare() {
	local table=$1 index=$2 am=$3 settings
	# ruhnsw at its default ef_search; ruivfflat at 10 of its 50 lists
	settings="SET enable_seqscan = off; SET enable_sort = off; SET ruivfflat.probes = 10;"
	for node in primary standby; do
		uses_index "$node" "$index" "$settings" \
			"SELECT q.id, r.id FROM rq q, LATERAL (SELECT id FROM $table ORDER BY v <-> q.v LIMIT 10) r" \
			"$table on the $node: the queries scan $index"
	done
	top10 primary "$table" "$settings" >"$TMP/$table.primary"
	top10 standby "$table" "$settings" >"$TMP/$table.standby"
	is "$(wc -l <"$TMP/$table.primary")" $((NQ * 10)) "$table: 10 rows for each of the $NQ queries on the primary"
	if cmp -s "$TMP/$table.primary" "$TMP/$table.standby"; then
		ok 0 "$table: the standby's top 10 of all $NQ queries equal the primary's"
	else
		ok 1 "$table: the standby's top 10 of all $NQ queries equal the primary's"
		diff "$TMP/$table.primary" "$TMP/$table.standby" | head -n 20 | sed 's/^/# /'
	fi
	top10 primary "$table" "SET enable_indexscan = off;" >"$TMP/$table.exact"
	num_ge "$(LC_ALL=C join -j1 <(awk '{print $1"-"$3}' FS="|" "$TMP/$table.exact" | LC_ALL=C sort) \
		<(awk '{print $1"-"$3}' FS="|" "$TMP/$table.standby" | LC_ALL=C sort) | wc -l |
		awk -v n=$((NQ * 10)) '{ printf "%.3f", $1 / n }')" 0.95 "$table: the standby's answers have recall@10"
	is "$(awk -F'|' '$3 % 10 == 0' "$TMP/$table.standby" | wc -l)" 0 "$table: no deleted row in the standby's answers"
}

compare rh rh_idx ruhnsw
[ $WANT_IVF = 0 ] || compare ri ri_idx ruivfflat

tap_done
