# Shared helpers for the benchmark sections (http.sh, later ws.sh, tls.sh):
# temp dir and process bookkeeping, starting the origin and the proxies from
# generated configs, CPU accounting from /proc, running and parsing wrk.
# Sourced, not executed. Every wait is bounded; every process started here is
# stopped by PID from the EXIT trap.

BENCH_DIR=${BENCH_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
CLK_TCK=$(getconf CLK_TCK)

# "pid:starttime" of everything we started, so cleanup never signals a PID
# that the kernel has since handed to another process.
BENCH_TRACKED=()
BENCH_TMP=
# Set by start_* functions: PID of the process just started.
LAST_PID=
# sluice's default TLS 1.2 ciphers and TLS 1.3 suites, given to the other
# proxies so that every target negotiates the same ones.
TLS_CIPHERS='ECDHE+AESGCM:ECDHE+CHACHA20'
TLS_CIPHERSUITES='TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256'

bench_log() {
	printf '%s [bench] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

bench_die() {
	bench_log "ERROR: $*"
	exit 2
}

# Field 22 of /proc/PID/stat (start time in ticks since boot). The comm field
# may hold spaces and parentheses, so fields are counted after the last ')'.
pid_starttime() {
	awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null
}

bench_track() {
	local st
	st=$(pid_starttime "$1") || return 0
	[ -n "$st" ] && BENCH_TRACKED+=("$1:$st")
}

# True when PID still names the process we recorded and it has not exited
# (a zombie waiting to be reaped counts as gone).
tracked_alive() {
	local pid=${1%%:*} st=${1#*:}
	[ "$(awk '{ sub(/.*\) /, ""); print $1 ":" $20 }' "/proc/$pid/stat" 2>/dev/null)" != "Z:$st" ] &&
		[ "$(pid_starttime "$pid")" = "$st" ]
}

# Direct children of PID (nginx master -> workers).
pid_children() {
	cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+$' || true
}

# A PID and its children, one level deep: enough for nginx master+workers and
# for single-process haproxy/sluice (threads are accounted in the process).
pid_tree() {
	local p
	for p in "$@"; do
		echo "$p"
		pid_children "$p"
	done
}

# Sum of utime+stime (fields 14 and 15, clock ticks) over PIDs and their
# children. /proc/PID/stat already totals all threads of a process.
cpu_ticks() {
	local p sum=0 t
	for p in $(pid_tree "$@"); do
		t=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || continue
		[ -n "$t" ] && sum=$((sum + t))
	done
	echo "$sum"
}

# Machine-wide ticks from /proc/stat as "total steal busy", busy being user,
# nice and system time of all processes (interrupt and softirq time is left
# out: the kernel may account it apart from any process). Other people's
# work on the machine and the hypervisor's steal time are the main sources
# of noise between runs; each run records both so that a disturbed run can
# be recognised.
machine_ticks() {
	awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i
		print t, $9, $2 + $3 + $4; exit }' /proc/stat
}

# CPU ticks of this script's reaped children (cutime + cstime, fields 16 and
# 17): wrk, through `timeout`, once it has been waited for.
self_child_ticks() {
	awk '{ sub(/.*\) /, ""); print $14 + $15 }' /proc/$$/stat
}

# steal_pct "T0 S0 B0" "T1 S1 B1": percentage of machine time stolen.
steal_pct() {
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x); split(b, y); d = y[1] - x[1]
		printf "%.1f", (d > 0 ? 100 * (y[2] - x[2]) / d : 0) }'
}

# other_pct "T0 S0 B0" "T1 S1 B1" OURS: percentage of machine time (all
# CPUs) spent busy by processes other than OURS ticks of the benchmark.
other_pct() {
	awk -v a="$1" -v b="$2" -v ours="$3" 'BEGIN { split(a, x); split(b, y)
		d = y[1] - x[1]; o = y[3] - x[3] - ours; if (o < 0) o = 0
		printf "%.1f", (d > 0 ? 100 * o / d : 0) }'
}

# Median of the numbers on stdin (mean of the two middle ones for an even
# count); prints nothing for empty input.
median() {
	sort -g | awk '{ v[NR] = $1 }
		END { if (NR == 0) exit
		      if (NR % 2) print v[(NR + 1) / 2]
		      else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Stop everything we started: TERM, wait up to 5s, then KILL. Children are
# collected first so that nginx workers are not orphaned if the master hangs.
bench_cleanup() {
	local rc=$? entry pid i all=()
	trap - EXIT INT TERM
	for entry in "${BENCH_TRACKED[@]}"; do
		tracked_alive "$entry" || continue
		all+=("$entry")
		for pid in $(pid_children "${entry%%:*}"); do
			local st
			st=$(pid_starttime "$pid")
			[ -n "$st" ] && all+=("$pid:$st")
		done
	done
	for entry in "${all[@]}"; do
		tracked_alive "$entry" && kill -TERM "${entry%%:*}" 2>/dev/null
	done
	for i in $(seq 50); do
		local left=0
		for entry in "${all[@]}"; do
			tracked_alive "$entry" && left=1
		done
		[ "$left" = 0 ] && break
		sleep 0.1
	done
	for entry in "${all[@]}"; do
		if tracked_alive "$entry"; then
			bench_log "PID ${entry%%:*} ignored SIGTERM, sending SIGKILL"
			kill -KILL "${entry%%:*}" 2>/dev/null
		fi
	done
	# Reap our direct children so none lingers as a zombie.
	wait 2>/dev/null
	if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ]; then
		if [ "${BENCH_KEEP:-0}" = 1 ]; then
			bench_log "kept $BENCH_TMP"
		else
			rm -rf "$BENCH_TMP"
		fi
	fi
	exit "$rc"
}

bench_init() {
	BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX") || bench_die "mktemp failed"
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || bench_die "required command not found: $c"
	done
}

# select_targets: the targets of TARGETS that can run, in `active`; a
# sluice or floor target without a binary is left out with its reason in
# SKIPPED.
# The backend's own commands are the section's to check.
select_targets() {
	local t
	declare -gA SKIPPED=()
	active=()
	for t in $TARGETS; do
		case $t in
		backend) ;;
		haproxy) need_cmd haproxy ;;
		nginx) need_cmd nginx ;;
		sluice)
			if ! sluice_bin >/dev/null; then
				bench_log "sluice binary not found at $(sluice_path): skipping the sluice target (set SLUICE_BIN)"
				# shellcheck disable=SC2034 # read by the sections
				SKIPPED[sluice]="binary not found: $(sluice_path)"
				continue
			fi
			;;
		floor)
			if ! floor_bin >/dev/null; then
				bench_log "floor binary not found at $(floor_path): skipping the floor target (make bench builds it; or set FLOOR_BIN)"
				SKIPPED[floor]="binary not found: $(floor_path)"
				continue
			fi
			;;
		*) bench_die "unknown target '$t' (known: backend haproxy nginx sluice floor)" ;;
		esac
		active+=("$t")
	done
	[ "${#active[@]}" -gt 0 ] || bench_die "no target to run"
}

# round_order ROUND TARGET...: the targets rotated by ROUND places, one a
# line. Every round starts elsewhere so that no target always runs first
# (cold caches) or right after the same neighbour.
round_order() {
	local r=$1 i
	shift
	for ((i = 0; i < $#; i++)); do
		echo "${@:$(((i + r) % $# + 1)):1}"
	done
}

# need_whole VAR...: each variable named must hold a whole number.
need_whole() {
	local v
	for v in "$@"; do
		case ${!v} in
		'' | *[!0-9]*) bench_die "$v must be a whole number, got '${!v}'" ;;
		esac
	done
}

# Print N distinct free TCP ports on 127.0.0.1. All sockets stay bound until
# every port is chosen, so the N ports differ.
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# wait_listen PORT PID NAME LOG: wait up to 10s for 127.0.0.1:PORT to accept,
# failing early (with the log tail) if PID exits.
wait_listen() {
	local port=$1 pid=$2 name=$3 log=$4 i
	for i in $(seq 100); do
		if ! kill -0 "$pid" 2>/dev/null; then
			bench_log "$name exited during start-up; last lines of $log:"
			tail -n 20 "$log" >&2 2>/dev/null
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	bench_log "$name did not listen on 127.0.0.1:$port within 10s; last lines of $log:"
	tail -n 20 "$log" >&2 2>/dev/null
	return 1
}

# check_response URL LITERAL [CAFILE]: one request must answer 200 with
# exactly the body LITERAL (backslash escapes as in printf %b), so that a
# misconfigured proxy answering fast 502s cannot pass for a fast one. An
# https URL is verified against CAFILE.
check_response() {
	local url=$1 code ca=()
	[ -n "${3:-}" ] && ca=(--cacert "$3")
	printf '%b' "$2" >"$BENCH_TMP/check.want"
	code=$(curl -sS --max-time 5 "${ca[@]}" -o "$BENCH_TMP/check.body" -w '%{http_code}' "$url" 2>"$BENCH_TMP/check.err") || {
		bench_log "request to $url failed: $(cat "$BENCH_TMP/check.err")"
		return 1
	}
	if [ "$code" != 200 ] || ! cmp -s "$BENCH_TMP/check.want" "$BENCH_TMP/check.body"; then
		bench_log "unexpected answer from $url: status $code, body: $(head -c 200 "$BENCH_TMP/check.body")"
		return 1
	fi
}

# nginx_common DIR [EVENTS RLIMIT_NOFILE]: main and events contexts, one
# worker. EVENTS is the body of the events block (default 4096
# worker_connections); RLIMIT_NOFILE, when given, sets worker_rlimit_nofile.
# nginx needs writable temp paths even when it never buffers to disk; keep
# them in our directory instead of /var/lib/nginx.
nginx_common() {
	local dir=$1 events=${2:-$'\tworker_connections 4096;'} rlimit=
	[ -n "${3:-}" ] && rlimit=$'\n'"worker_rlimit_nofile $3;"
	cat <<EOF
worker_processes 1;$rlimit
pid $dir/nginx.pid;
error_log $dir/error.log warn;
$( [ "$(id -u)" = 0 ] && echo "user nobody $(id -gn nobody 2>/dev/null || echo nobody);" )
events {
$events
}
EOF
}

nginx_http_common() {
	local dir=$1
	cat <<EOF
	access_log off;
	client_body_temp_path $dir/body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	# Default since 1.19.10 is 1000: the load generator and the proxies
	# would see connections closed every 1000 requests.
	keepalive_requests 10000000;
	keepalive_timeout 75s;
EOF
}

# spawn_listen NAME PORT OUT LOG CMD...: start CMD in the background
# (stdin /dev/null, stdout and stderr to OUT), track it and wait for it to
# listen on PORT, LOG being the file to show if it does not; sets LAST_PID.
spawn_listen() {
	local name=$1 port=$2 out=$3 log=$4
	shift 4
	"$@" </dev/null >"$out" 2>&1 &
	LAST_PID=$!
	bench_track "$LAST_PID"
	wait_listen "$port" "$LAST_PID" "$name" "$log"
}

# run_nginx NAME DIR PORT: start nginx in the foreground from DIR/nginx.conf.
run_nginx() {
	local name=$1 dir=$2 port=$3
	nginx -t -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/check.log" 2>&1 || {
		cat "$dir/check.log" >&2
		bench_die "$name: nginx -t rejected $dir/nginx.conf"
	}
	spawn_listen "$name" "$port" "$dir/stdout.log" "$dir/error.log" \
		nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' ||
		bench_die "$name did not start"
}

# start_origin PORT LITERAL: the backend, an nginx with one worker answering
# every request over HTTP/1.1 keep-alive with LITERAL, an nginx string
# literal without the quotes (so "\n" is a newline).
start_origin() {
	local port=$1 lit=$2 dir="$BENCH_TMP/origin"
	mkdir -p "$dir"
	{
		nginx_common "$dir"
		echo "http {"
		nginx_http_common "$dir"
		cat <<EOF
	default_type text/plain;
	server {
		listen 127.0.0.1:$port;
		location / {
			return 200 "$lit";
		}
	}
}
EOF
	} >"$dir/nginx.conf"
	run_nginx origin "$dir" "$port"
}

# Header work the proxies do on every request. sluice always appends
# X-Forwarded-For, sets X-Forwarded-Proto/-Host and generates X-Request-ID;
# with PROXY_HEADERS=1 (default) HAProxy and nginx are configured to do the
# same so that CPU per request compares equal work.
proxy_headers_on() {
	[ "${PROXY_HEADERS:-1}" = 1 ]
}

# tunnel_fds TUNNELS: open files to allow for TUNNELS idle tunnels. Each
# costs a proxy two descriptors, the load generator and the backend one
# each; nginx is given room for three (see start_nginx_proxy), plus 1024.
tunnel_fds() {
	echo $((3 * $1 + 1024))
}

# The proxies are started from one function each for every section. Given
# TUNNELS and TUNNEL_S they are set up for WebSocket: room for TUNNELS open
# tunnels, TUNNEL_S seconds of idle time allowed in one, and no idle upstream
# connection kept for reuse, as each connection to the backend becomes a
# tunnel. Without them, for plain HTTP keep-alive, upstream connections are
# kept and shared.

# start_haproxy DIR PORT BACKEND_PORT [TUNNELS TUNNEL_S]: one thread, mode
# http (HAProxy switches a connection to a tunnel on a 101). With
# BENCH_TLS_PEM set (a PEM file holding the certificate and its key), the
# bind speaks TLS 1.2-1.3 with sluice's default ciphers, ALPN http/1.1, a
# session cache of 20000 and tickets, as sluice has them by default.
start_haproxy() {
	local dir=$1 port=$2 bport=$3 tunnels=${4:-} maxconn=4096
	# Optional lines of the defaults section, each with its leading newline.
	local fe_maxconn='' reuse=$'\n\thttp-reuse always' tunnel=''
	local ssl_global='' bind_ssl='' proto=http
	if [ -n "${BENCH_TLS_PEM:-}" ]; then
		ssl_global=$(printf '\n\t%s' \
			"ssl-default-bind-ciphers $TLS_CIPHERS" \
			"ssl-default-bind-ciphersuites $TLS_CIPHERSUITES" \
			"ssl-default-bind-options ssl-min-ver TLSv1.2" \
			"tune.ssl.cachesize 20000")
		bind_ssl=" ssl crt $BENCH_TLS_PEM alpn http/1.1"
		proto=https
	fi
	if [ -n "$tunnels" ]; then
		maxconn=$((tunnels + 1000))
		fe_maxconn=$'\n\t'"maxconn $maxconn"
		reuse=
		tunnel=$'\n\t'"timeout tunnel ${5}s"
	fi
	mkdir -p "$dir"
	{
		cat <<EOF
global
	nbthread 1
	maxconn $maxconn
	pidfile $dir/haproxy.pid$ssl_global

defaults
	mode http$fe_maxconn
	option http-keep-alive$reuse
	timeout connect 3s
	timeout client 60s
	timeout server 30s$tunnel
	timeout http-request 10s
	timeout http-keep-alive 60s

frontend fe
	bind 127.0.0.1:$port$bind_ssl
	default_backend be
EOF
		if proxy_headers_on; then
			cat <<EOF
	option forwardfor
	http-request set-header X-Forwarded-Proto $proto
EOF
			cat <<'EOF'
	http-request set-header X-Forwarded-Host %[req.hdr(host)]
	http-request set-header X-Request-ID %[uuid] unless { req.hdr(x-request-id) -m found }
EOF
		fi
		cat <<EOF

backend be
	server origin 127.0.0.1:$bport
EOF
	} >"$dir/haproxy.cfg"
	haproxy -c -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 || {
		cat "$dir/check.log" >&2
		bench_die "haproxy -c rejected $dir/haproxy.cfg"
	}
	spawn_listen haproxy "$port" "$dir/haproxy.log" "$dir/haproxy.log" \
		haproxy -db -f "$dir/haproxy.cfg" || bench_die "haproxy did not start"
}

# start_nginx_proxy DIR PORT BACKEND_PORT [TUNNELS TUNNEL_S]: one worker;
# for WebSocket the usual location (HTTP/1.1 upstream, Upgrade passed,
# Connection "upgrade"). nginx allocates its connection table at start-up,
# so that part of its memory per tunnel is in the RSS read before the idle
# tunnels are opened.
start_nginx_proxy() {
	local dir=$1 port=$2 bport=$3 tunnels=${4:-} tunnel_s=${5:-}
	local events='' rlimit='' listen='' location
	local keepalive=$'\n\t\tkeepalive 64;\n\t\tkeepalive_requests 10000000;'
	location=$'\t\t\tproxy_set_header Connection "";'
	if [ -n "$tunnels" ]; then
		rlimit=$(tunnel_fds "$tunnels")
		events=$(cat <<EOF
	# Two per tunnel, plus headroom: with less than 1/16 of them free,
	# nginx starts closing connections still waiting for their request
	# ("worker_connections are not enough, reusing connections"), which
	# would fail handshakes in the idle part.
	worker_connections $((3 * tunnels + 512));
EOF
		)
		keepalive=
		listen=" backlog=4096"
		location=$(cat <<EOF
			proxy_set_header Upgrade \$http_upgrade;
			proxy_set_header Connection "upgrade";
			proxy_read_timeout ${tunnel_s}s;
			proxy_send_timeout ${tunnel_s}s;
EOF
		)
	fi
	mkdir -p "$dir"
	{
		nginx_common "$dir" "$events" "$rlimit"
		echo "http {"
		nginx_http_common "$dir"
		cat <<EOF
	upstream origin {
		server 127.0.0.1:$bport;$keepalive
	}
	map \$http_x_request_id \$bench_request_id {
		"" \$request_id;
		default \$http_x_request_id;
	}
	server {
		listen 127.0.0.1:$port$listen;
		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
$location
EOF
		if proxy_headers_on; then
			cat <<'EOF'
			proxy_set_header Host $http_host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_set_header X-Forwarded-Host $http_host;
			proxy_set_header X-Request-ID $bench_request_id;
EOF
		fi
		cat <<'EOF'
		}
	}
}
EOF
	} >"$dir/nginx.conf"
	run_nginx nginx "$dir" "$port"
}

# sluice_path: where the sluice binary is expected (SLUICE_BIN, default the
# top of the source tree, where an in-tree build puts it).
sluice_path() {
	realpath -m "${SLUICE_BIN:-$BENCH_DIR/../../sluice}"
}

# executable PATH: prints PATH when it is an executable file, else fails.
executable() {
	[ -f "$1" ] && [ -x "$1" ] && echo "$1"
}

# sluice_bin: absolute path of the binary, or failure when it is missing.
sluice_bin() {
	executable "$(sluice_path)"
}

# floor_path: where the floor binary (tests/bench/floor.c, built by
# `make bench`) is expected: FLOOR_BIN; else tests/bench/floor under
# SLUICE_BUILDDIR, or else next to SLUICE_BIN (the top of the build tree
# that made it); else tests/bench/ itself, where an in-tree build puts it.
floor_path() {
	local bin
	if [ -n "${FLOOR_BIN:-}" ]; then
		bin=$FLOOR_BIN
	elif [ -n "${SLUICE_BUILDDIR:-}" ]; then
		bin=$SLUICE_BUILDDIR/tests/bench/floor
	elif [ -n "${SLUICE_BIN:-}" ]; then
		bin=$(dirname "$SLUICE_BIN")/tests/bench/floor
	else
		bin=$BENCH_DIR/floor
	fi
	realpath -m "$bin"
}

# floor_bin: absolute path of the binary, or failure when it is missing.
floor_bin() {
	executable "$(floor_path)"
}

# start_floor DIR PORT BACKEND_PORT: the floor target, a single-threaded
# epoll loop that passes HTTP/1.1 messages on unchanged (see floor.c). It has
# no configuration and does no header work, whatever PROXY_HEADERS says.
start_floor() {
	local dir=$1 port=$2 bport=$3 bin
	bin=$(floor_bin) || bench_die "floor binary not found: $(floor_path)"
	mkdir -p "$dir"
	spawn_listen floor "$port" "$dir/floor.log" "$dir/floor.log" \
		"$bin" "$port" "$bport" || bench_die "floor did not start"
}

# start_sluice DIR PORT BACKEND_PORT [TUNNELS TUNNEL_S]: workers = 1. For
# WebSocket, tunnel_idle is left at its default, which TUNNEL_S must equal,
# so that a binary without WebSocket support still takes the file and can be
# skipped after its handshake fails. With BENCH_TLS_CHAIN and BENCH_TLS_KEY
# set, the listener has a tls section with that certificate and every other
# TLS directive at its default.
start_sluice() {
	local dir=$1 port=$2 bport=$3 tunnels=${4:-} bin
	# Optional lines, each with its leading newline.
	local shutdown='' backlog='' keepalive=$'\n\tkeepalive = 64' tls=''
	if [ -n "${BENCH_TLS_CHAIN:-}" ]; then
		tls=$(printf '\n\ttls {\n\t\tcertificate "bench" { chain = "%s" key = "%s" }\n\t}' "$BENCH_TLS_CHAIN" "${BENCH_TLS_KEY:?BENCH_TLS_KEY must go with BENCH_TLS_CHAIN}")
	fi
	if [ -n "$tunnels" ]; then
		shutdown=$'\nshutdown_timeout = 2s'
		backlog=$'\n\tbacklog = 4096'
		keepalive=
	fi
	bin=$(sluice_bin) || bench_die "sluice binary not found: $(sluice_path)"
	mkdir -p "$dir"
	cat >"$dir/sluice.conf" <<EOF
workers = 1
log_level = warn
access_log = "off"$shutdown
listener "bench" {
	address = "127.0.0.1:$port"$backlog$tls
}
pool "origin" {$keepalive
	server "origin" { address = "127.0.0.1:$bport" }
}
route "all" {
	pool = "origin"
}
EOF
	timeout 10 "$bin" -t -c "$dir/sluice.conf" >"$dir/check.log" 2>&1 || {
		cat "$dir/check.log" >&2
		bench_die "sluice -t rejected $dir/sluice.conf"
	}
	spawn_listen sluice "$port" "$dir/sluice.log" "$dir/sluice.log" \
		"$bin" -c "$dir/sluice.conf" || bench_die "sluice did not start"
}

# run_wrk OUTFILE DURATION_S URL: wrk with keep-alive connections. wrk runs in
# the background so that a signal to this script interrupts the wait at
# once; `timeout` bounds it if wrk hangs.
run_wrk() {
	local out=$1 dur=$2 url=$3 pid rc
	timeout -k 5 $((dur + 30)) wrk -t"${WRK_THREADS:-1}" -c"${CONNS:-64}" -d"${dur}s" \
		--timeout 5s --latency "$url" </dev/null >"$out" 2>&1 &
	pid=$!
	bench_track "$pid"
	wait "$pid"
	rc=$?
	if [ "$rc" != 0 ]; then
		bench_log "wrk failed (exit $rc):"
		cat "$out" >&2
		return 1
	fi
}

# parse_wrk FILE: prints "rps p99_ms requests non2xx socket_errors", with
# latencies converted to milliseconds.
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
		if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
		return v + 0
	}
	/^ +99%/ { p99 = ms($2) }
	/ requests in / { reqs = $1 }
	/^Requests\/sec:/ { rps = $2 }
	/Non-2xx or 3xx responses:/ { bad = $NF }
	/Socket errors:/ {
		gsub(/,/, "")
		errs = $4 + $6 + $8 + $10
	}
	END {
		if (rps == "" || reqs == "" || p99 == "") exit 1
		printf "%s %.4f %s %d %d\n", rps, p99, reqs, bad, errs
	}' "$1"
}

# us_per TICKS COUNT: CPU microseconds per unit (request, connection) from a
# difference of /proc clock ticks; 0 when COUNT is 0.
us_per() {
	awk -v d="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.3f", (n > 0 ? d / hz * 1e6 / n : 0) }'
}

# bench_out SECTION: the JSON results path (BENCH_OUT, or a dated file under
# results/), its directory created.
bench_out() {
	local out=${BENCH_OUT:-$BENCH_DIR/results/$1-$(date +%Y%m%d-%H%M%S).json}
	mkdir -p "$(dirname "$out")" || bench_die "cannot create $(dirname "$out")"
	echo "$out"
}

# Describe the machine and tool versions once per run, as key=value lines
# for the report (the same keys appear in the JSON "meta" object).
bench_machine_meta() {
	echo "host=$(uname -n)"
	echo "kernel=$(uname -sr)"
	echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "cpus=$(nproc)"
	echo "clk_tck=$CLK_TCK"
	echo "haproxy=$(haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }')"
	echo "nginx=$(nginx -v 2>&1 | sed 's|.*nginx/||')"
	echo "wrk=$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
}

# bench_meta [FILTER]: BENCH_META, the --meta arguments of every report: the
# machine's lines (each passed through the function FILTER when given, which
# prints it, changed or not, or nothing to drop it) and the sluice binary's
# version and path when there is one. BENCH_SKIPPED: a --skipped argument
# per target in the SKIPPED array (target -> why), if the section has one.
bench_meta() {
	local line bin t
	BENCH_META=()
	while IFS= read -r line; do
		[ -n "${1:-}" ] && line=$("$1" "$line")
		[ -n "$line" ] && BENCH_META+=(--meta "$line")
	done < <(bench_machine_meta)
	if bin=$(sluice_bin); then
		BENCH_META+=(--meta "sluice=$(timeout 5 "$bin" -v 2>&1 | head -n 1)" --meta "sluice_bin=$bin")
	fi
	BENCH_SKIPPED=()
	if declare -p SKIPPED >/dev/null 2>&1; then
		for t in "${!SKIPPED[@]}"; do
			BENCH_SKIPPED+=(--skipped "$t=${SKIPPED[$t]}")
		done
	fi
}

# wrk_round T R URL PID...: the warm-up and one measured wrk run of round R
# (0-based) against target T, with the CPU ticks of each PID read around
# it: T's own process first, then side processes (the origin, Redis) whose
# CPU per request is reported too; a PID given twice counts once in the
# machine's other load. Sets WR_RPS WR_P99 WR_REQS WR_NON2XX WR_SERR, WR_US
# (CPU us per request of each PID, in order), WR_STEAL, WR_OTHER and
# WR_WARN (a note of non-2xx answers and socket errors). Dies when a process
# died during the run or wrk's output makes no sense.
wrk_round() {
	local t=$1 r=$2 url=$3 out="$BENCH_TMP/wrk-$1-$2.out" m0 m1 w0 w1 ours i p
	shift 3
	local pids=("$@") c0=() c1=()
	local -A seen=()
	if [ "$WARMUP" -gt 0 ]; then
		run_wrk "$BENCH_TMP/warmup.out" "$WARMUP" "$url" || bench_die "warm-up of $t failed"
	fi
	for i in "${!pids[@]}"; do c0[i]=$(cpu_ticks "${pids[i]}"); done
	m0=$(machine_ticks)
	w0=$(self_child_ticks)
	run_wrk "$out" "$DURATION" "$url" || bench_die "run of $t failed"
	for i in "${!pids[@]}"; do c1[i]=$(cpu_ticks "${pids[i]}"); done
	m1=$(machine_ticks)
	w1=$(self_child_ticks)
	WR_STEAL=$(steal_pct "$m0" "$m1")
	ours=$((w1 - w0))
	for i in "${!pids[@]}"; do
		[ -n "${seen[${pids[i]}]:-}" ] && continue
		seen[${pids[i]}]=1
		ours=$((ours + c1[i] - c0[i]))
	done
	WR_OTHER=$(other_pct "$m0" "$m1" "$ours")
	for p in "${pids[@]}"; do
		kill -0 "$p" 2>/dev/null || bench_die "$t: process $p died during the run"
	done
	read -r WR_RPS WR_P99 WR_REQS WR_NON2XX WR_SERR < <(parse_wrk "$out") ||
		bench_die "cannot parse wrk output for $t: $(cat "$out")"
	[ "${WR_REQS:-0}" -gt 0 ] || bench_die "$t completed no request"
	WR_US=()
	for i in "${!pids[@]}"; do WR_US[i]=$(us_per $((c1[i] - c0[i])) "$WR_REQS"); done
	WR_WARN=
	[ "$WR_NON2XX" -gt 0 ] && WR_WARN+=" non-2xx=$WR_NON2XX"
	[ "$WR_SERR" -gt 0 ] && WR_WARN+=" socket-errors=$WR_SERR"
	return 0
}
