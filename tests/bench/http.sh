#!/usr/bin/env bash
# Benchmark 1: HTTP/1.1 keep-alive, small response. wrk drives 64 keep-alive
# connections through each target to one nginx origin answering
# "hello, world\n"; reports req/s, p99 latency and proxy CPU per request.
# Besides HAProxy and nginx, sluice is read against the floor (floor.c), a
# minimal epoll proxy doing no header work: a steadier yardstick than a
# saturated HAProxy. Environment: DURATION ROUNDS CONNS WARMUP TARGETS
# SLUICE_BIN FLOOR_BIN BENCH_OUT PROXY_HEADERS WRK_THREADS BENCH_KEEP (see
# docs/performance.md).

set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_DIR/lib.sh"

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2}
WRK_THREADS=${WRK_THREADS:-1}
TARGETS=${TARGETS:-backend haproxy nginx sluice floor}
BODY='hello, world\n'

need_whole DURATION ROUNDS CONNS WARMUP WRK_THREADS
[ "$ROUNDS" -ge 1 ] && [ "$DURATION" -ge 1 ] || bench_die "DURATION and ROUNDS must be at least 1"

need_cmd wrk curl nginx python3 awk timeout getconf
bench_init

select_targets

read -r ORIGIN_PORT HAPROXY_PORT NGINX_PORT SLUICE_PORT FLOOR_PORT <<<"$(free_ports 5)"
declare -A PORT=([backend]=$ORIGIN_PORT [haproxy]=$HAPROXY_PORT [nginx]=$NGINX_PORT [sluice]=$SLUICE_PORT
	[floor]=$FLOOR_PORT)
declare -A PID=()

# Everything is started once, before the first run, and stays up: each
# proxy keeps its upstream connections warm across rounds, as in service.
start_origin "$ORIGIN_PORT" "$BODY"
PID[backend]=$LAST_PID
for t in "${active[@]}"; do
	case $t in
	haproxy) start_haproxy "$BENCH_TMP/haproxy" "${PORT[$t]}" "$ORIGIN_PORT" ;;
	nginx) start_nginx_proxy "$BENCH_TMP/nginx" "${PORT[$t]}" "$ORIGIN_PORT" ;;
	sluice) start_sluice "$BENCH_TMP/sluice" "${PORT[$t]}" "$ORIGIN_PORT" ;;
	floor) start_floor "$BENCH_TMP/floor" "${PORT[$t]}" "$ORIGIN_PORT" ;;
	*) continue ;;
	esac
	PID[$t]=$LAST_PID
done
for t in "${active[@]}"; do
	check_response "http://127.0.0.1:${PORT[$t]}/" "$BODY" || bench_die "$t does not answer correctly"
	bench_log "$t: pid ${PID[$t]} on 127.0.0.1:${PORT[$t]}"
done

n=${#active[@]}
est=$(((WARMUP + DURATION + 1) * n * ROUNDS))
bench_log "targets: ${active[*]}; $ROUNDS rounds of ${DURATION}s (+${WARMUP}s warm-up), $CONNS connections; about ${est}s"

RUNS="$BENCH_TMP/runs.tsv"
printf 'target\tround\trps\tp99_ms\trequests\tcpu_us\tbackend_cpu_us\tnon2xx\tsocket_errors\tsteal_pct\tother_pct\n' >"$RUNS"

for ((r = 0; r < ROUNDS; r++)); do
	for t in $(round_order "$r" "${active[@]}"); do
		wrk_round "$t" "$r" "http://127.0.0.1:${PORT[$t]}/" "${PID[$t]}" "${PID[backend]}"
		printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$((r + 1))" "$WR_RPS" "$WR_P99" \
			"$WR_REQS" "${WR_US[0]}" "${WR_US[1]}" "$WR_NON2XX" "$WR_SERR" "$WR_STEAL" "$WR_OTHER" >>"$RUNS"
		bench_log "round $((r + 1))/$ROUNDS $t: $WR_RPS req/s, p99 ${WR_P99} ms, ${WR_US[0]} us CPU/req, steal ${WR_STEAL}%, other load ${WR_OTHER}%${WR_WARN:+ WARNING:$WR_WARN}"
	done
done

OUT=$(bench_out http) || exit 1
bench_meta

# sluice / floor, for information: the floor passes bytes and does nothing
# else, so the ratio is what all of sluice's work per request costs on top.
# Only when both ran; a skipped target's row already says why.
floor_info=()
if [ -n "${PID[floor]:-}" ]; then
	floor_info+=(--meta "floor_bin=$(floor_bin)"
		--note "floor: minimal epoll proxy (tests/bench/floor.c), passes requests unchanged, no header work")
	[ -n "${PID[sluice]:-}" ] && floor_info+=(--info 'cpu_us|lower|floor|CPU per request')
fi

# The checked ratios are printed again over the quiet rounds alone (at most
# 2% steal and 2% other load): a disturbed round costs HAProxy, which is
# saturated, more than sluice, so the medians of all rounds can flatter sluice.
python3 "$BENCH_DIR/report.py" --runs "$RUNS" --out "$OUT" --section http \
	--title "HTTP keep-alive, 13-byte body: wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s, warm-up ${WARMUP}s, $ROUNDS rounds, medians" \
	--targets "$TARGETS" --candidate sluice \
	--metric 'rps|req/s|%.0f' \
	--metric 'p99_ms|p99 ms|%.3f' \
	--metric 'cpu_us|CPU us/req|%.2f' \
	--metric 'backend_cpu_us|origin CPU us/req|%.2f' \
	--metric 'non2xx|non-2xx|%.0f|sum' \
	--metric 'socket_errors|sock errs|%.0f|sum' \
	--metric 'steal_pct|steal %|%.1f' \
	--metric 'other_pct|other load %|%.1f' \
	--check 'cpu_us|le|0.75|haproxy|CPU per request' \
	--check 'rps|ge|1.1|haproxy|requests/s' \
	--check 'p99_ms|le|1.0|haproxy|p99 latency' \
	--compare nginx \
	"${floor_info[@]}" \
	--quiet 'steal_pct|2' --quiet 'other_pct|2' \
	--meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--meta "duration_s=$DURATION" --meta "rounds=$ROUNDS" --meta "warmup_s=$WARMUP" \
	--meta "connections=$CONNS" --meta "wrk_threads=$WRK_THREADS" \
	--meta "wrk_cmd=wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --timeout 5s --latency" \
	--meta "body=hello, world\\n (13 bytes)" \
	--meta "proxy_headers=${PROXY_HEADERS:-1}" \
	"${BENCH_META[@]}" "${BENCH_SKIPPED[@]}" || bench_die "report failed"
