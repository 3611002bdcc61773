#!/usr/bin/env bash
# Benchmark 2: WebSocket. Part "echo": WS_CONNS connections through each
# target to a Node `ws` echo backend, each sending a WS_SIZE-byte message and
# waiting for its echo before the next; reports round trips/s, p99 latency
# and the proxy's CPU per round trip. Part "idle": IDLE_CONNS idle WebSockets
# through a freshly started proxy; reports its RSS growth per tunnel.
# Environment: DURATION ROUNDS WARMUP WS_CONNS WS_SIZE WS_THREADS IDLE_CONNS
# IDLE_ROUNDS IDLE_CONCURRENCY IDLE_SETTLE WS_PARTS TARGETS SLUICE_BIN
# SLUICE_NODE_MODULES BENCH_OUT PROXY_HEADERS BENCH_KEEP (docs/performance.md).

set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_DIR/lib.sh"

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-2}
WS_CONNS=${WS_CONNS:-200}
WS_SIZE=${WS_SIZE:-64}
WS_THREADS=${WS_THREADS:-1}
IDLE_CONNS=${IDLE_CONNS:-5000}
# Memory per tunnel hardly varies between runs; three runs per target show
# whether it does.
IDLE_ROUNDS=${IDLE_ROUNDS:-$((ROUNDS < 3 ? ROUNDS : 3))}
IDLE_CONCURRENCY=${IDLE_CONCURRENCY:-100}
IDLE_SETTLE=${IDLE_SETTLE:-2}
WS_PARTS=${WS_PARTS:-echo idle}
TARGETS=${TARGETS:-backend haproxy nginx sluice}
# TARGETS may be the list given to every section: the floor (http only)
# passes HTTP messages, not tunnels, so it is left out here.
ws_targets=
for t in $TARGETS; do
	case $t in
	floor) bench_log "ws section: target floor is not measured here (it does not tunnel)" ;;
	*) ws_targets+="${ws_targets:+ }$t" ;;
	esac
done
TARGETS=$ws_targets
# Socket.io's pingInterval + pingTimeout is 45 s; every proxy gets the same
# idle limit for tunnels, sluice's default tunnel_idle.
TUNNEL_TIMEOUT=120

need_whole DURATION ROUNDS WARMUP WS_CONNS WS_SIZE WS_THREADS IDLE_CONNS IDLE_ROUNDS \
	IDLE_CONCURRENCY IDLE_SETTLE
[ "$ROUNDS" -ge 1 ] && [ "$DURATION" -ge 1 ] || bench_die "DURATION and ROUNDS must be at least 1"
[ "$WS_SIZE" -ge 1 ] && [ "$WS_SIZE" -le 65535 ] || bench_die "WS_SIZE must be 1..65535"
[ "$WS_THREADS" -ge 1 ] && [ "$WS_CONNS" -ge "$WS_THREADS" ] || bench_die "WS_THREADS must be 1..WS_CONNS"
[ "$IDLE_CONNS" -ge 1 ] && [ "$IDLE_ROUNDS" -ge 1 ] || bench_die "IDLE_CONNS and IDLE_ROUNDS must be at least 1"
do_echo=0
do_idle=0
for p in $WS_PARTS; do
	case $p in
	echo) do_echo=1 ;;
	idle) do_idle=1 ;;
	*) bench_die "unknown part '$p' in WS_PARTS (known: echo idle)" ;;
	esac
done

need_cmd node curl python3 awk timeout getconf

# The `ws` package, as for the integration tests: SLUICE_NODE_MODULES is a
# directory holding node_modules; else tests/integration, else the copy that
# tests/integration/run.sh installs into the build tree under make check.
# Nothing is installed from here.
if [ -n "${SLUICE_NODE_MODULES:-}" ]; then
	NODE_BASE=$SLUICE_NODE_MODULES
elif [ ! -d "$BENCH_DIR/../integration/node_modules" ] && [ -n "${SLUICE_BUILDDIR:-}" ] &&
	[ -d "$SLUICE_BUILDDIR/tests/integration-deps/node_modules" ]; then
	NODE_BASE=$SLUICE_BUILDDIR/tests/integration-deps
else
	NODE_BASE=$BENCH_DIR/../integration
fi
NODE_BASE=$(realpath -m "$NODE_BASE")
export SLUICE_NODE_MODULES=$NODE_BASE
timeout 20 node --input-type=module -e "
	import { createRequire } from 'node:module';
	import path from 'node:path';
	createRequire(path.join(process.env.SLUICE_NODE_MODULES, 'package.json'))('ws');
" >/dev/null 2>&1 ||
	bench_die "cannot load the npm package 'ws' from $NODE_BASE/node_modules: run 'npm ci' in tests/integration, or set SLUICE_NODE_MODULES to a directory whose node_modules holds it"
WS_VERSION=$(timeout 20 node -e "
	const path = require('node:path');
	console.log(require(path.join(process.env.SLUICE_NODE_MODULES, 'node_modules/ws/package.json')).version);
" 2>/dev/null)

# Room for the idle tunnels (see tunnel_fds); children inherit the limit
# set here.
need_fds=$(tunnel_fds "$IDLE_CONNS")
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
	ulimit -n "$need_fds" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
	bench_die "open files limit is $(ulimit -n) (hard $(ulimit -Hn)); $IDLE_CONNS idle tunnels need $need_fds: raise it or lower IDLE_CONNS"
fi

bench_init

select_targets

# --- processes ---------------------------------------------------------------

# start_ws_backend DIR PORT: the Node `ws` echo server.
start_ws_backend() {
	local dir=$1 port=$2
	mkdir -p "$dir"
	spawn_listen backend "$port" "$dir/backend.log" "$dir/backend.log" \
		node "$BENCH_DIR/ws-echo-server.mjs" "$port" ||
		bench_die "the ws echo backend did not start"
}

# start_target TARGET DIR PORT: a proxy in front of the backend, set up for
# IDLE_CONNS tunnels idle up to TUNNEL_TIMEOUT (see lib.sh); LAST_PID.
start_target() {
	case $1 in
	haproxy) start_haproxy "$2" "$3" "$BACKEND_PORT" "$IDLE_CONNS" "$TUNNEL_TIMEOUT" ;;
	nginx) start_nginx_proxy "$2" "$3" "$BACKEND_PORT" "$IDLE_CONNS" "$TUNNEL_TIMEOUT" ;;
	sluice) start_sluice "$2" "$3" "$BACKEND_PORT" "$IDLE_CONNS" "$TUNNEL_TIMEOUT" ;;
	*) bench_die "start_target: unknown target $1" ;;
	esac
}

# stop_child PID: TERM one process this script started (nginx's master takes
# its worker along), up to 5 s, then KILL; reaps it. The PID cannot have been
# reused: an unreaped child keeps it.
stop_child() {
	local pid=$1 st entry i
	st=$(pid_starttime "$pid")
	[ -n "$st" ] || return 0
	entry="$pid:$st"
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 50); do
		tracked_alive "$entry" || break
		sleep 0.1
	done
	if tracked_alive "$entry"; then
		bench_log "PID $pid ignored SIGTERM, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# run_load OUT LIMIT_S MODE ARGS...: the load generator, bounded by
# `timeout` and waited for in the background so that a signal interrupts at
# once. Its stderr goes to OUT.err.
run_load() {
	local out=$1 lim=$2 pid rc
	shift 2
	timeout -k 5 "$lim" node "$BENCH_DIR/ws-load.mjs" "$@" </dev/null >"$out" 2>"$out.err" &
	pid=$!
	bench_track "$pid"
	wait "$pid"
	rc=$?
	if [ "$rc" != 0 ]; then
		[ "$rc" = 124 ] && echo "ws-load: no result within ${lim}s" >>"$out.err"
		bench_log "ws-load $1 failed (exit $rc): $(head -c 500 "$out.err")"
		return 1
	fi
}

# ws_check TARGET PORT: one WebSocket, one echo, a clean close.
ws_check() {
	run_load "$BENCH_TMP/check-$1.out" 30 check --port "$2" --size "$WS_SIZE" 2>/dev/null
}

# --- start-up ----------------------------------------------------------------

read -r BACKEND_PORT HAPROXY_PORT NGINX_PORT SLUICE_PORT <<<"$(free_ports 4)"
declare -A PORT=([backend]=$BACKEND_PORT [haproxy]=$HAPROXY_PORT [nginx]=$NGINX_PORT [sluice]=$SLUICE_PORT)
declare -A PID=()

start_ws_backend "$BENCH_TMP/backend" "$BACKEND_PORT"
PID[backend]=$LAST_PID
# The echo part's proxies are started once and kept for all its rounds.
for t in "${active[@]}"; do
	[ "$t" = backend ] && continue
	start_target "$t" "$BENCH_TMP/$t" "${PORT[$t]}"
	PID[$t]=$LAST_PID
done
running=()
for t in "${active[@]}"; do
	if ws_check "$t" "${PORT[$t]}"; then
		bench_log "$t: pid ${PID[$t]} on 127.0.0.1:${PORT[$t]}, WebSocket echo OK"
		running+=("$t")
	elif [ "$t" = sluice ]; then
		why=$(head -n 1 "$BENCH_TMP/check-$t.out.err" | sed 's/^ws-load: //')
		bench_log "sluice: WebSocket handshake or echo failed ($why): skipping the sluice target (a binary without WebSocket support?)"
		SKIPPED[sluice]="WebSocket handshake failed: $why"
		stop_child "${PID[$t]}"
	else
		bench_die "$t: no working WebSocket echo through it: $(head -n 1 "$BENCH_TMP/check-$t.out.err")"
	fi
done
active=("${running[@]}")
[ "${#active[@]}" -gt 0 ] || bench_die "no target to run"
n=${#active[@]}

# wrk does not take part here.
no_wrk() {
	case $1 in
	wrk=*) ;;
	*) echo "$1" ;;
	esac
}
bench_meta no_wrk
BENCH_META+=(--meta "node=$(node -v)" --meta "ws=$WS_VERSION")

OUT=$(bench_out ws) || exit 1
rm -f "$OUT"

# --- echo --------------------------------------------------------------------

# echo_row TARGET ROUND JSON TSV: appends the run's row to TSV and prints a
# one-line summary for the log.
echo_row() {
	python3 - "$@" "$CLK_TCK" <<'EOF'
import json, sys
target, rnd, path, tsv, hz = sys.argv[1:6]
hz = float(hz)
d = json.load(open(path))
rt = d["round_trips"]
if rt <= 0:
    print("no round trip completed")
    sys.exit(1)
us = lambda ticks: ticks / hz * 1e6 / rt
ours = d["target_ticks"] + d["client_ticks"]
if target != "backend":
    ours += d["backend_ticks"]
total, steal, busy = d["machine_ticks"]
steal_pct = 100.0 * steal / total if total > 0 else 0.0
other_pct = 100.0 * max(0, busy - ours) / total if total > 0 else 0.0
row = [target, rnd, "%.1f" % d["rtps"], "%.4f" % d["p99_ms"], "%.4f" % d["p50_ms"],
       str(rt), "%.3f" % us(d["target_ticks"]), "%.3f" % us(d["backend_ticks"]),
       "%.1f" % d["client_cpu_pct"], str(d["lost_conns"]), str(d["bad_echoes"]),
       "%.1f" % steal_pct, "%.1f" % other_pct]
with open(tsv, "a") as f:
    f.write("\t".join(row) + "\n")
warn = ""
if d["lost_conns"]:
    warn += " lost-connections=%d" % d["lost_conns"]
if d["bad_echoes"]:
    warn += " bad-echoes=%d" % d["bad_echoes"]
print("%.0f round trips/s, p99 %.3f ms, %s us CPU/rt, client CPU %.0f%%, steal %.1f%%, other load %.1f%%%s" % (
    d["rtps"], d["p99_ms"], row[6], d["client_cpu_pct"], steal_pct, other_pct,
    " WARNING:" + warn if warn else ""))
EOF
}

if [ "$do_echo" = 1 ]; then
	est=$(((WARMUP + DURATION + 2) * n * ROUNDS))
	bench_log "echo: targets ${active[*]}; $ROUNDS rounds of ${DURATION}s (+${WARMUP}s warm-up), $WS_CONNS connections, $WS_SIZE-byte messages, $WS_THREADS client thread(s); about ${est}s"
	ERUNS="$BENCH_TMP/echo-runs.tsv"
	printf 'target\tround\trtps\tp99_ms\tp50_ms\tround_trips\tcpu_us\tbackend_cpu_us\tclient_cpu_pct\tlost_conns\tbad_echoes\tsteal_pct\tother_pct\n' >"$ERUNS"
	for ((r = 0; r < ROUNDS; r++)); do
		for t in $(round_order "$r" "${active[@]}"); do
			res="$BENCH_TMP/echo-$t-$r.json"
			run_load "$res" $((WARMUP + DURATION + 90)) echo --port "${PORT[$t]}" \
				--conns "$WS_CONNS" --size "$WS_SIZE" --warmup "$WARMUP" --duration "$DURATION" \
				--threads "$WS_THREADS" --pids "${PID[$t]}" --backend-pids "${PID[backend]}" ||
				bench_die "echo run of $t failed"
			for p in "${PID[$t]}" "${PID[backend]}"; do
				kill -0 "$p" 2>/dev/null || bench_die "$t: process $p died during the run"
			done
			summary=$(echo_row "$t" "$((r + 1))" "$res" "$ERUNS") || bench_die "$t: $summary"
			bench_log "echo round $((r + 1))/$ROUNDS $t: $summary"
		done
	done
	python3 "$BENCH_DIR/report.py" --runs "$ERUNS" --out "$OUT" --merge-key echo --section ws \
		--title "WebSocket echo, $WS_SIZE-byte messages, ping-pong: $WS_CONNS connections, ${DURATION}s, warm-up ${WARMUP}s, $ROUNDS rounds, medians" \
		--targets "$TARGETS" --candidate sluice \
		--metric 'rtps|rt/s|%.0f' \
		--metric 'p99_ms|p99 ms|%.3f' \
		--metric 'p50_ms|p50 ms|%.3f' \
		--metric 'cpu_us|CPU us/rt|%.2f' \
		--metric 'backend_cpu_us|backend CPU us/rt|%.2f' \
		--metric 'client_cpu_pct|client CPU %|%.0f' \
		--metric 'lost_conns|lost conns|%.0f|sum' \
		--metric 'bad_echoes|bad echoes|%.0f|sum' \
		--metric 'steal_pct|steal %|%.1f' \
		--metric 'other_pct|other load %|%.1f' \
		--check 'cpu_us|le|0.8|best(haproxy,nginx)|CPU per round trip' \
		--info 'rtps|higher|best(haproxy,nginx)|round trips/s' \
		--info 'p99_ms|lower|best(haproxy,nginx)|p99 latency' \
		--compare haproxy --compare nginx \
		--meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--meta "duration_s=$DURATION" --meta "rounds=$ROUNDS" --meta "warmup_s=$WARMUP" \
		--meta "connections=$WS_CONNS" --meta "message_bytes=$WS_SIZE" --meta "client_threads=$WS_THREADS" \
		--meta "proxy_headers=${PROXY_HEADERS:-1}" \
		"${BENCH_META[@]}" "${BENCH_SKIPPED[@]}" || bench_die "report failed"
fi

# The idle part starts a fresh proxy per run: the echo part's instances go.
for t in "${active[@]}"; do
	[ "$t" = backend ] || stop_child "${PID[$t]}"
done

# --- idle --------------------------------------------------------------------

# idle_row TARGET ROUND JSON TSV: as echo_row.
idle_row() {
	python3 - "$@" <<'EOF'
import json, sys
target, rnd, path, tsv = sys.argv[1:5]
d = json.load(open(path))
proxy = target != "backend"
per = d["rss_per_tunnel"] if proxy else None
row = [target, rnd, "%.1f" % per if proxy else "-",
       "%.0f" % (d["rss_before"] / 1024) if proxy else "-",
       "%.0f" % (d["rss_after"] / 1024) if proxy else "-",
       "%.3f" % d["open_s"]]
with open(tsv, "a") as f:
    f.write("\t".join(row) + "\n")
if proxy:
    print("RSS %.0f -> %.0f KiB, %.0f bytes per idle tunnel; %d opened in %.2f s" % (
        d["rss_before"] / 1024, d["rss_after"] / 1024, per, d["conns"], d["open_s"]))
else:
    print("%d opened in %.2f s (no proxy)" % (d["conns"], d["open_s"]))
EOF
}

if [ "$do_idle" = 1 ]; then
	est=$(((IDLE_CONNS / 1000 + IDLE_SETTLE + 5) * n * IDLE_ROUNDS))
	bench_log "idle: targets ${active[*]}; $IDLE_ROUNDS rounds of $IDLE_CONNS idle WebSockets ($IDLE_CONCURRENCY handshakes at a time, read ${IDLE_SETTLE}s after the last), a fresh proxy each; about ${est}s"
	IRUNS="$BENCH_TMP/idle-runs.tsv"
	printf 'target\tround\trss_per_tunnel\trss_before_kib\trss_after_kib\topen_s\n' >"$IRUNS"
	for ((r = 0; r < IDLE_ROUNDS; r++)); do
		for t in $(round_order "$r" "${active[@]}"); do
			res="$BENCH_TMP/idle-$t-$r.json"
			if [ "$t" = backend ]; then
				port=$BACKEND_PORT
				pids=
			else
				port=$(free_ports 1)
				start_target "$t" "$BENCH_TMP/idle-$t-$r" "$port"
				pids=$LAST_PID
			fi
			run_load "$res" $((IDLE_CONNS / 20 + IDLE_SETTLE + 60)) idle --port "$port" \
				--conns "$IDLE_CONNS" --concurrency "$IDLE_CONCURRENCY" --settle "$IDLE_SETTLE" \
				--pids "$pids" ||
				bench_die "idle run of $t failed"
			for p in $pids "${PID[backend]}"; do
				kill -0 "$p" 2>/dev/null || bench_die "$t: process $p died during the run"
			done
			[ -n "$pids" ] && stop_child "$pids"
			summary=$(idle_row "$t" "$((r + 1))" "$res" "$IRUNS") || bench_die "$t: $summary"
			bench_log "idle round $((r + 1))/$IDLE_ROUNDS $t: $summary"
		done
	done
	python3 "$BENCH_DIR/report.py" --runs "$IRUNS" --out "$OUT" --merge-key idle --section ws \
		--title "Idle WebSocket tunnels: $IDLE_CONNS per run through a fresh proxy, RSS read ${IDLE_SETTLE}s after the last opened, $IDLE_ROUNDS rounds, medians" \
		--targets "$TARGETS" --candidate sluice \
		--metric 'rss_per_tunnel|RSS B/tunnel|%.0f' \
		--metric 'rss_before_kib|RSS before KiB|%.0f' \
		--metric 'rss_after_kib|RSS after KiB|%.0f' \
		--metric 'open_s|open s|%.2f' \
		--limit 'rss_per_tunnel|le|2500|RSS bytes per idle tunnel' \
		--info 'rss_per_tunnel|lower|best(haproxy,nginx)|RSS per idle tunnel' \
		--compare haproxy --compare nginx \
		--meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--meta "idle_connections=$IDLE_CONNS" --meta "idle_rounds=$IDLE_ROUNDS" \
		--meta "idle_concurrency=$IDLE_CONCURRENCY" --meta "idle_settle_s=$IDLE_SETTLE" \
		--meta "open_files_limit=$(ulimit -n)" \
		"${BENCH_META[@]}" "${BENCH_SKIPPED[@]}" || bench_die "report failed"
fi
