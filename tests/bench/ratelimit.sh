#!/usr/bin/env bash
# Benchmark 4: the cost of a Redis-backed rate limit. Two sluice processes,
# identical but for a ratelimit on the route kept in a local redis-server,
# with a rate so high it never triggers; wrk drives 64 keep-alive
# connections through each to one nginx origin, rounds interleaved. Reports
# req/s and CPU per request (sluice's utime+stime; Redis's apart), and the
# ratio limited / plain. Target: CPU per request at most 1.10 times.
# Environment: DURATION ROUNDS CONNS WARMUP SLUICE_BIN BENCH_OUT WRK_THREADS
# LEASE_MAX (64) BENCH_KEEP (see docs/performance.md).

set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_DIR/lib.sh"

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2}
WRK_THREADS=${WRK_THREADS:-1}
LEASE_MAX=${LEASE_MAX:-256}
BODY='hello, world\n'
# Two sluice targets: "sluice" without limits is the reference.
TARGETS="sluice sluice-rl"

need_whole DURATION ROUNDS CONNS WARMUP WRK_THREADS LEASE_MAX
[ "$ROUNDS" -ge 1 ] && [ "$DURATION" -ge 1 ] || bench_die "DURATION and ROUNDS must be at least 1"

need_cmd wrk curl nginx redis-server redis-cli python3 awk timeout getconf
bench_init
BIN=$(sluice_bin) || bench_die "sluice binary not found: $(sluice_path) (set SLUICE_BIN)"

read -r ORIGIN_PORT REDIS_PORT PLAIN_PORT RL_PORT <<<"$(free_ports 4)"
declare -A PORT=([sluice]=$PLAIN_PORT [sluice-rl]=$RL_PORT)
declare -A PID=()

# start_target NAME PORT EXTRA: sluice as start_sluice runs it (one worker,
# upstream keep-alive), with EXTRA appended to its file.
start_target() {
	local name=$1 port=$2 extra=$3 dir="$BENCH_TMP/$1"
	mkdir -p "$dir"
	cat >"$dir/sluice.conf" <<EOF
workers = 1
log_level = warn
access_log = "off"
listener "bench" {
	address = "127.0.0.1:$port"
}
pool "origin" {
	keepalive = 64
	server "origin" { address = "127.0.0.1:$ORIGIN_PORT" }
}
$extra
EOF
	timeout 10 "$BIN" -t -c "$dir/sluice.conf" >"$dir/check.log" 2>&1 || {
		cat "$dir/check.log" >&2
		bench_die "sluice -t rejected $dir/sluice.conf"
	}
	spawn_listen "$name" "$port" "$dir/sluice.log" "$dir/sluice.log" \
		"$BIN" -c "$dir/sluice.conf" || bench_die "$name did not start"
	PID[$name]=$LAST_PID
}

start_origin "$ORIGIN_PORT" "$BODY"
PID[backend]=$LAST_PID
mkdir -p "$BENCH_TMP/redis"
spawn_listen redis "$REDIS_PORT" "$BENCH_TMP/redis/redis.log" "$BENCH_TMP/redis/redis.log" \
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no ||
	bench_die "redis-server did not start"
PID[redis]=$LAST_PID

start_target sluice "$PLAIN_PORT" 'route "all" { pool = "origin" }'
# A million a second with a burst of a million: never reached, so every
# request is allowed, as in service below the limit; the leases make most
# of them cost no round trip to Redis.
start_target sluice-rl "$RL_PORT" "ratelimit \"bench\" {
	rate = 1000000
	per = 1s
	burst = 1000000
}
route \"all\" { pool = \"origin\" ratelimit = \"bench\" }
redis {
	address = \"127.0.0.1:$REDIS_PORT\"
	prefix = \"bench:$$:\"
	lease_max = $LEASE_MAX
}"

for t in $TARGETS; do
	check_response "http://127.0.0.1:${PORT[$t]}/" "$BODY" || bench_die "$t does not answer correctly"
	bench_log "$t: pid ${PID[$t]} on 127.0.0.1:${PORT[$t]}"
done
# Keys vanish as soon as their TAT passes (microseconds here): look at the
# script's calls instead.
redis-cli -p "$REDIS_PORT" info commandstats | grep -q '^cmdstat_evalsha:' ||
	bench_die "sluice-rl sent no EVALSHA to Redis: the limit is not in the path"

est=$(((WARMUP + DURATION + 1) * 2 * ROUNDS))
bench_log "targets: $TARGETS; $ROUNDS rounds of ${DURATION}s (+${WARMUP}s warm-up), $CONNS connections, lease_max $LEASE_MAX; about ${est}s"

RUNS="$BENCH_TMP/runs.tsv"
printf 'target\tround\trps\tp99_ms\trequests\tcpu_us\tredis_cpu_us\tnon2xx\tsocket_errors\tsteal_pct\tother_pct\n' >"$RUNS"

for ((r = 0; r < ROUNDS; r++)); do
	for t in $(round_order "$r" $TARGETS); do
		wrk_round "$t" "$r" "http://127.0.0.1:${PORT[$t]}/" "${PID[$t]}" "${PID[backend]}" "${PID[redis]}"
		printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$((r + 1))" "$WR_RPS" "$WR_P99" \
			"$WR_REQS" "${WR_US[0]}" "${WR_US[2]}" "$WR_NON2XX" "$WR_SERR" "$WR_STEAL" "$WR_OTHER" >>"$RUNS"
		bench_log "round $((r + 1))/$ROUNDS $t: $WR_RPS req/s, p99 ${WR_P99} ms, ${WR_US[0]} us CPU/req (redis ${WR_US[2]}), steal ${WR_STEAL}%, other load ${WR_OTHER}%${WR_WARN:+ WARNING:$WR_WARN}"
	done
done

OUT=$(bench_out ratelimit) || exit 1
bench_meta
BENCH_META+=(--meta "redis=$(redis-server --version | awk '{ print $3 }')")

python3 "$BENCH_DIR/report.py" --runs "$RUNS" --out "$OUT" --section ratelimit \
	--title "Redis-backed rate limit that never triggers vs none: wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s, warm-up ${WARMUP}s, $ROUNDS rounds, medians" \
	--targets "$TARGETS" --candidate sluice-rl \
	--metric 'rps|req/s|%.0f' \
	--metric 'p99_ms|p99 ms|%.3f' \
	--metric 'cpu_us|CPU us/req|%.2f' \
	--metric 'redis_cpu_us|Redis CPU us/req|%.3f' \
	--metric 'non2xx|non-2xx|%.0f|sum' \
	--metric 'socket_errors|sock errs|%.0f|sum' \
	--metric 'steal_pct|steal %|%.1f' \
	--metric 'other_pct|other load %|%.1f' \
	--check 'cpu_us|le|1.10|sluice|CPU per request' \
	--info 'rps|higher|sluice|requests/s' \
	--meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--meta "duration_s=$DURATION" --meta "rounds=$ROUNDS" --meta "warmup_s=$WARMUP" \
	--meta "connections=$CONNS" --meta "wrk_threads=$WRK_THREADS" --meta "lease_max=$LEASE_MAX" \
	--meta "wrk_cmd=wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --timeout 5s --latency" \
	"${BENCH_META[@]}" || bench_die "report failed"
