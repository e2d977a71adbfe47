#!/bin/sh
# server_load.sh BUILD_DIR - load test of `ruvector serve` with wrk.
#
# Starts BUILD_DIR/ruvector serve on a temporary directory (a free loopback
# port), loads 20,000 random 128-d points (seeded, Cosine) through the
# Qdrant upsert route, then runs wrk for about 10 s on each of
#   search: POST /collections/bench/points/search, k = 10, random queries
#   upsert: PUT  /collections/bench/points, one new point per request
#           (each acknowledged write is committed: fsync per group commit)
# with 2 connections on 2 threads, prints requests/s and p99 latency, and
# stops the server with SIGTERM (which must exit 0).
#
# Environment: POINTS (20000), DIM (128), DURATION (10s), CONNS (2),
# THREADS (server worker threads, 2).
set -eu

BUILD=${1:?usage: server_load.sh BUILD_DIR}
BIN=$BUILD/ruvector
POINTS=${POINTS:-20000}
DIM=${DIM:-128}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-2}
THREADS=${THREADS:-2}

for t in wrk curl awk; do
	command -v $t >/dev/null || { echo "server_load.sh: $t is required" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "server_load.sh: $BIN not found (build first)" >&2; exit 1; }

TMP=$(mktemp -d)
PID=
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

"$BIN" serve --data "$TMP/data" --port 0 --threads "$THREADS" 2>"$TMP/server.log" &
PID=$!
PORT=
for _ in $(seq 1 200); do
	PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/server.log" | head -n 1)
	[ -n "$PORT" ] && break
	sleep 0.05
done
[ -n "$PORT" ] || { echo "server_load.sh: the server did not start:" >&2; cat "$TMP/server.log" >&2; exit 1; }
URL=http://127.0.0.1:$PORT

curl -sf -X PUT "$URL/collections/bench" -H 'Content-Type: application/json' \
	-d "{\"vectors\":{\"size\":$DIM,\"distance\":\"Cosine\"}}" >/dev/null

# Load in batches of 1000 points: uniform [-1, 1) components, fixed seed.
echo "loading $POINTS random $DIM-d points..."
T0=$(date +%s.%N)
B=0
while [ $((B * 1000)) -lt "$POINTS" ]; do
	awk -v b=$B -v dim="$DIM" -v total="$POINTS" 'BEGIN {
		srand(1000 + b); from = b * 1000; to = from + 1000; if (to > total) to = total
		printf "{\"points\":["
		for (i = from; i < to; i++) {
			printf "%s{\"id\":%d,\"vector\":[", (i > from ? "," : ""), i
			for (d = 0; d < dim; d++) printf "%s%.5f", (d ? "," : ""), rand() * 2 - 1
			printf "],\"payload\":{\"group\":%d}}", i % 10
		}
		printf "]}"
	}' >"$TMP/batch.json"
	curl -sf -X PUT "$URL/collections/bench/points?wait=true" -H 'Content-Type: application/json' \
		--data-binary @"$TMP/batch.json" >/dev/null
	B=$((B + 1))
done
T1=$(date +%s.%N)
COUNT=$(curl -sf "$URL/collections/bench" | sed -n 's/.*"points_count":\([0-9]*\).*/\1/p')
awk -v n="$COUNT" -v t0="$T0" -v t1="$T1" 'BEGIN { printf "loaded %d points in %.1f s (%.0f points/s, batches of 1000)\n", n, t1 - t0, n / (t1 - t0) }'

# wrk scripts: a pool of pre-made bodies, picked at random per request.
cat >"$TMP/search.lua" <<EOF
math.randomseed(7)
local bodies = {}
for q = 1, 200 do
  local v = {}
  for d = 1, $DIM do v[d] = string.format("%.5f", math.random() * 2 - 1) end
  bodies[q] = '{"vector":[' .. table.concat(v, ",") .. '],"limit":10}'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, "/collections/bench/points/search", nil, bodies[math.random(#bodies)])
end
EOF
cat >"$TMP/upsert.lua" <<EOF
-- id_base is a global on purpose: setup() runs in wrk's main Lua state and
-- thread:set() assigns the global of each thread's own state, so every
-- thread writes new ids from its own range.
local counter = 0
local vecs = {}
local threads = 0
id_base = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id_base", threads * 100000000)
end
init = function(args)
  math.randomseed(id_base)
  for q = 1, 200 do
    local v = {}
    for d = 1, $DIM do v[d] = string.format("%.5f", math.random() * 2 - 1) end
    vecs[q] = table.concat(v, ",")
  end
end
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local body = '{"points":[{"id":' .. (id_base + counter) .. ',"vector":[' .. vecs[(counter % #vecs) + 1] .. '],"payload":{"group":1}}]}'
  return wrk.format(nil, "/collections/bench/points?wait=true", nil, body)
end
EOF

run() { # name script
	wrk -t"$CONNS" -c"$CONNS" -d"$DURATION" --latency -s "$2" "$URL" >"$TMP/$1.out" 2>&1 || {
		cat "$TMP/$1.out" >&2; exit 1; }
	RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/$1.out")
	P50=$(awk '$1 == "50%" { print $2 }' "$TMP/$1.out")
	P99=$(awk '$1 == "99%" { print $2 }' "$TMP/$1.out")
	ERR=$(awk '/Non-2xx or 3xx responses:/ { print $5 }' "$TMP/$1.out")
	printf "%-7s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n" "$1" "$RPS" "$P50" "$P99" "${ERR:-0}"
}

echo "wrk: $CONNS connections, $CONNS threads, $DURATION each; server: $THREADS worker threads"
run search "$TMP/search.lua"
run upsert "$TMP/upsert.lua"
AFTER=$(curl -sf "$URL/collections/bench" | sed -n 's/.*"points_count":\([0-9]*\).*/\1/p')
echo "points after the upsert run: $AFTER"

kill -TERM "$PID"
if wait "$PID"; then
	echo "server stopped cleanly (SIGTERM, exit 0)"
else
	echo "server_load.sh: the server exited with status $?" >&2
	exit 1
fi
PID=
