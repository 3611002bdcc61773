#!/usr/bin/env bash
# Benchmark 3: TLS termination. HAProxy and sluice, one thread each, hold
# the same certificate (ECDSA P-256, then RSA 2048, generated here) in front
# of one nginx origin answering "hello, world\n". Three parts per proxy and
# key type, rounds interleaved, medians:
#   full      new TLS connections/s, every one a full handshake: HS_CLIENTS
#             `openssl s_time -new -www /` loops (each connection: full
#             handshake, one HTTP/1.0 GET, close; s_time never offers a
#             session in -new mode)
#   resumed   the same with `s_time -reuse`: every connection after the
#             first resumes the session (TLS 1.3 tickets); the share of
#             resumed connections is counted from s_time's own marks
#   keepalive wrk -cCONNS over https, keep-alive: requests/s
# and the proxy's CPU time (utime + stime from /proc) per connection or
# request. Environment: DURATION ROUNDS CONNS WARMUP HS_CLIENTS KEY_TYPES
# TLS_PARTS TARGETS SLUICE_BIN BENCH_OUT WRK_THREADS BENCH_KEEP (see
# docs/performance.md).

set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_DIR/lib.sh"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-1}
WRK_THREADS=${WRK_THREADS:-1}
HS_CLIENTS=${HS_CLIENTS:-4}
KEY_TYPES=${KEY_TYPES:-ecdsa rsa}
TLS_PARTS=${TLS_PARTS:-full resumed keepalive}
TARGETS=${TARGETS:-haproxy sluice}
BODY='hello, world\n'

need_whole DURATION ROUNDS CONNS WARMUP WRK_THREADS HS_CLIENTS
if [ "$ROUNDS" -lt 1 ] || [ "$DURATION" -lt 1 ] || [ "$HS_CLIENTS" -lt 1 ]; then
	bench_die "DURATION, ROUNDS and HS_CLIENTS must be at least 1"
fi
# TARGETS may be the list given to every section: the origin has no TLS,
# nginx is not set up for it here and the floor (http only) has none, so
# those are left out.
tls_targets=
for t in $TARGETS; do
	case $t in
	haproxy | sluice) tls_targets+="${tls_targets:+ }$t" ;;
	backend | nginx | floor) bench_log "tls section: target $t is not measured here (haproxy and sluice are)" ;;
	*) bench_die "unknown target '$t' (known for tls: haproxy sluice)" ;;
	esac
done
TARGETS=$tls_targets
[ -n "$TARGETS" ] || bench_die "no tls target in TARGETS (known: haproxy sluice)"
for k in $KEY_TYPES; do
	case $k in
	ecdsa | rsa) ;;
	*) bench_die "KEY_TYPES: unknown key type '$k' (known: ecdsa rsa)" ;;
	esac
done
for p in $TLS_PARTS; do
	case $p in
	full | resumed | keepalive) ;;
	*) bench_die "TLS_PARTS: unknown part '$p' (known: full resumed keepalive)" ;;
	esac
done
has_part() {
	case " $TLS_PARTS " in *" $1 "*) return 0 ;; esac
	return 1
}

need_cmd wrk curl nginx openssl python3 awk timeout getconf
bench_init

select_targets

# --- certificates ------------------------------------------------------------

# make_certs DIR: a test CA (ECDSA P-256) and, signed by it, one leaf per key
# type for "localhost" and 127.0.0.1: DIR/KEY.pem (certificate), KEY.key,
# KEY-full.pem (both, for HAProxy's crt).
make_certs() {
	local dir=$1 k
	mkdir -p "$dir"
	{
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" &&
			openssl req -x509 -new -key "$dir/ca.key" -subj '/CN=sluice bench CA' -days 2 -sha256 \
				-addext 'basicConstraints = critical, CA:TRUE' \
				-addext 'keyUsage = critical, keyCertSign' -out "$dir/ca.pem"
	} >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; bench_die "cannot make the test CA"; }
	for k in $KEY_TYPES; do
		{
			if [ "$k" = rsa ]; then
				openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$k.key"
			else
				openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$k.key"
			fi &&
				openssl req -new -key "$dir/$k.key" -subj '/CN=localhost' -out "$dir/$k.csr" &&
				printf '%s\n' 'basicConstraints = CA:FALSE' 'extendedKeyUsage = serverAuth' \
					'subjectAltName = DNS:localhost, IP:127.0.0.1' >"$dir/$k.ext" &&
				openssl x509 -req -in "$dir/$k.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
					-set_serial "0x$(openssl rand -hex 8)" -days 2 -sha256 -extfile "$dir/$k.ext" -out "$dir/$k.pem" &&
				cat "$dir/$k.pem" "$dir/$k.key" >"$dir/$k-full.pem"
		} >>"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; bench_die "cannot make the $k certificate"; }
	done
}

PKI="$BENCH_TMP/pki"
make_certs "$PKI"

# --- clients -------------------------------------------------------------------

# tls_probe PORT KEY: a TLS 1.3 handshake with s_client must show a server
# key of the expected size, and a second connection offering the session
# saved from the first (after a whole request, so that the tickets arrive)
# must be resumed, and the request s_time sends (HTTP/1.0, no Host, no SNI)
# must be answered 200: s_time does not look at the status, and a proxy
# whose origin refuses that request would be measured on other work.
# Prints "protocol cipher group" of the first.
tls_probe() {
	local port=$1 k=$2 bits out sess="$BENCH_TMP/probe.sess"
	[ "$k" = rsa ] && bits=2048 || bits=256
	rm -f "$sess"
	out=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
		timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$PKI/ca.pem" \
			-verify_return_error -ign_eof -sess_out "$sess" 2>&1) || { echo "s_client failed: $(tail -n 3 <<<"$out")"; return 1; }
	grep -q "^Server public key is $bits bit" <<<"$out" || { echo "not a $bits-bit key: $(grep 'public key' <<<"$out")"; return 1; }
	grep -q '^HTTP/1.1 200' <<<"$out" || { echo "no 200 answer"; return 1; }
	awk '/^New, / { sub(/,$/, "", $2); p = $2; c = $5 } /^Server Temp Key:/ { g = $4; sub(/,$/, "", g) }
		END { printf "%s %s %s\n", p, c, g }' <<<"$out"
	out=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
		timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$PKI/ca.pem" \
			-ign_eof -sess_in "$sess" 2>&1) || { echo "s_client (resume) failed"; return 1; }
	grep -q '^Reused, ' <<<"$out" || { echo "the session was not resumed"; return 1; }
	out=$(printf 'GET / HTTP/1.0\r\n\r\n' |
		timeout 10 openssl s_client -connect "127.0.0.1:$port" -noservername -quiet -ign_eof 2>/dev/null) ||
		{ echo "s_client (s_time's request) failed"; return 1; }
	grep -q '^HTTP/1\.[01] 200' <<<"$out" || { echo "s_time's request (HTTP/1.0, no Host) is not answered 200: $(head -n 1 <<<"$out")"; return 1; }
}

# run_s_time OUT PORT ARGS...: HS_CLIENTS `openssl s_time` loops at once for
# DURATION seconds, each bounded by `timeout`. Prints "connections resumed
# wall_s": connections counted by s_time, those it marked as resumed ('r'),
# and the wall time of the whole run.
run_s_time() {
	local out=$1 port=$2 i pids=() t0 t1 rc=0
	shift 2
	t0=$(date +%s.%N)
	for ((i = 0; i < HS_CLIENTS; i++)); do
		timeout -k 5 $((DURATION + 30)) openssl s_time -connect "127.0.0.1:$port" -time "$DURATION" "$@" \
			</dev/null >"$out.$i" 2>&1 &
		pids+=("$!")
		bench_track "$!"
	done
	for i in "${pids[@]}"; do
		wait "$i" || rc=$?
	done
	t1=$(date +%s.%N)
	if [ "$rc" != 0 ]; then
		bench_log "s_time failed (exit $rc):"
		tail -n 5 "$out".* >&2
		return 1
	fi
	# The marks are lines of one character per connection: '*' new, 'r' resumed.
	cat "$out".* | awk -v t0="$t0" -v t1="$t1" '
		/connections in [0-9.]+ real seconds/ { n += $1 }
		/^[*rt3]+$/ { r += gsub(/r/, "") }
		END { if (n == "") exit 1; printf "%d %d %.3f\n", n, r, t1 - t0 }'
}

# --- start-up ------------------------------------------------------------------

read -r -a ports <<<"$(free_ports 5)"
ORIGIN_PORT=${ports[0]}
declare -A PORT=([haproxy-ecdsa]=${ports[1]} [haproxy-rsa]=${ports[2]} [sluice-ecdsa]=${ports[3]} [sluice-rsa]=${ports[4]})
declare -A PID=()

start_origin "$ORIGIN_PORT" "$BODY"
ORIGIN_PID=$LAST_PID
for t in "${active[@]}"; do
	for k in $KEY_TYPES; do
		case $t in
		haproxy) BENCH_TLS_PEM="$PKI/$k-full.pem" start_haproxy "$BENCH_TMP/$t-$k" "${PORT[$t-$k]}" "$ORIGIN_PORT" ;;
		sluice) BENCH_TLS_CHAIN="$PKI/$k.pem" BENCH_TLS_KEY="$PKI/$k.key" start_sluice "$BENCH_TMP/$t-$k" "${PORT[$t-$k]}" "$ORIGIN_PORT" ;;
		esac
		PID[$t-$k]=$LAST_PID
	done
done

# A sluice without TLS in its transport takes the file but does not speak
# TLS: skipped with the reason, as a missing binary is.
running=()
declare -A TLSINFO=()
for t in "${active[@]}"; do
	ok=1
	for k in $KEY_TYPES; do
		port=${PORT[$t-$k]}
		if info=$(tls_probe "$port" "$k") && { check_response "https://127.0.0.1:$port/" "$BODY" "$PKI/ca.pem" ||
			{ info="a request over https failed" && false; }; }; then
			TLSINFO[$t-$k]=$info
			bench_log "$t ($k): pid ${PID[$t-$k]} on 127.0.0.1:$port, $info, resumption OK"
		elif [ "$t" = sluice ]; then
			bench_log "sluice ($k): no working HTTPS ($info): skipping the sluice target (a binary without TLS?)"
			SKIPPED[sluice]="no working HTTPS: $info"
			ok=0
			break
		else
			bench_die "$t ($k): no working HTTPS: $info"
		fi
	done
	[ "$ok" = 1 ] && running+=("$t")
done
active=("${running[@]}")
[ "${#active[@]}" -gt 0 ] || bench_die "no target to run"

n=${#active[@]}
nk=$(wc -w <<<"$KEY_TYPES")
per=0
has_part full && per=$((per + DURATION + 1))
has_part resumed && per=$((per + DURATION + 1))
has_part keepalive && per=$((per + WARMUP + DURATION + 1))
bench_log "targets: ${active[*]}; keys: $KEY_TYPES; parts: $TLS_PARTS; $ROUNDS rounds of ${DURATION}s, $HS_CLIENTS s_time clients, wrk -c$CONNS; about $((per * n * nk * ROUNDS))s"

HEADER='target\tround\tfull_cps\tfull_cpu_us\tresumed_cps\tresumed_cpu_us\tresumed_pct\trps\tp99_ms\tka_cpu_us\tnon2xx\tsocket_errors\tsteal_pct\tother_pct\n'
for k in $KEY_TYPES; do
	# shellcheck disable=SC2059 # the header is the format
	printf "$HEADER" >"$BENCH_TMP/runs-$k.tsv"
done

for ((r = 0; r < ROUNDS; r++)); do
	for t in $(round_order "$r" "${active[@]}"); do
		for k in $KEY_TYPES; do
			pid=${PID[$t-$k]}
			port=${PORT[$t-$k]}
			fcps='' fcpu='' rcps='' rcpu='' rpct='' rps='' p99='' kcpu='' non2xx=0 serr=0
			m0=$(machine_ticks)
			w0=$(self_child_ticks)
			o0=$(cpu_ticks "$pid" "$ORIGIN_PID")
			if has_part full; then
				c0=$(cpu_ticks "$pid")
				res=$(run_s_time "$BENCH_TMP/full-$t-$k-$r" "$port" -new -www /) || bench_die "full handshakes against $t ($k) failed"
				c1=$(cpu_ticks "$pid")
				read -r conns resumed wall <<<"$res"
				[ "$conns" -gt 0 ] || bench_die "$t ($k): no connection completed"
				[ "$resumed" = 0 ] || bench_log "WARNING: $t ($k): $resumed resumed connections in the full-handshake part"
				fcps=$(awk -v n="$conns" -v w="$wall" 'BEGIN { printf "%.1f", n / w }')
				fcpu=$(us_per $((c1 - c0)) "$conns")
			fi
			if has_part resumed; then
				c0=$(cpu_ticks "$pid")
				res=$(run_s_time "$BENCH_TMP/resumed-$t-$k-$r" "$port" -reuse -www /) || bench_die "resumed handshakes against $t ($k) failed"
				c1=$(cpu_ticks "$pid")
				read -r conns resumed wall <<<"$res"
				[ "$conns" -gt 0 ] || bench_die "$t ($k): no connection completed"
				rcps=$(awk -v n="$conns" -v w="$wall" 'BEGIN { printf "%.1f", n / w }')
				rcpu=$(us_per $((c1 - c0)) "$conns")
				rpct=$(awk -v n="$conns" -v r="$resumed" 'BEGIN { v = 100 * r / n; printf "%.1f", (v > 100 ? 100 : v) }')
			fi
			if has_part keepalive; then
				url="https://127.0.0.1:$port/"
				if [ "$WARMUP" -gt 0 ]; then
					run_wrk "$BENCH_TMP/warmup.out" "$WARMUP" "$url" || bench_die "warm-up of $t ($k) failed"
				fi
				c0=$(cpu_ticks "$pid")
				run_wrk "$BENCH_TMP/wrk-$t-$k-$r.out" "$DURATION" "$url" || bench_die "keep-alive run of $t ($k) failed"
				c1=$(cpu_ticks "$pid")
				read -r rps p99 reqs non2xx serr < <(parse_wrk "$BENCH_TMP/wrk-$t-$k-$r.out") ||
					bench_die "cannot parse wrk output for $t ($k): $(cat "$BENCH_TMP/wrk-$t-$k-$r.out")"
				[ "${reqs:-0}" -gt 0 ] || bench_die "$t ($k) completed no request"
				kcpu=$(us_per $((c1 - c0)) "$reqs")
			fi
			m1=$(machine_ticks)
			w1=$(self_child_ticks)
			o1=$(cpu_ticks "$pid" "$ORIGIN_PID")
			for p in "$pid" "$ORIGIN_PID"; do
				kill -0 "$p" 2>/dev/null || bench_die "$t ($k): process $p died during the run"
			done
			steal=$(steal_pct "$m0" "$m1")
			other=$(other_pct "$m0" "$m1" $((o1 - o0 + w1 - w0)))
			printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$((r + 1))" \
				"$fcps" "$fcpu" "$rcps" "$rcpu" "$rpct" "$rps" "$p99" "$kcpu" "$non2xx" "$serr" \
				"$steal" "$other" >>"$BENCH_TMP/runs-$k.tsv"
			warn=
			[ "${non2xx:-0}" -gt 0 ] && warn+=" non-2xx=$non2xx"
			[ "${serr:-0}" -gt 0 ] && warn+=" socket-errors=$serr"
			[ -n "$rpct" ] && awk -v p="$rpct" 'BEGIN { exit !(p < 95) }' && warn+=" only ${rpct}% resumed"
			bench_log "round $((r + 1))/$ROUNDS $t ($k):${fcps:+ full ${fcps}/s ${fcpu} us CPU;}${rcps:+ resumed ${rcps}/s ${rcpu} us CPU (${rpct}%);}${rps:+ keep-alive ${rps} req/s ${kcpu} us CPU/req;} steal ${steal}%, other load ${other}%${warn:+ WARNING:$warn}"
		done
	done
done

OUT=$(bench_out tls) || exit 1
rm -f "$OUT"

# nginx is only the origin here.
origin_nginx() {
	case $1 in
	nginx=*) echo "origin_$1" ;;
	*) echo "$1" ;;
	esac
}
bench_meta origin_nginx
BENCH_META+=(--meta "openssl=$(openssl version | awk '{ print $2 }')")

for k in $KEY_TYPES; do
	[ "$k" = rsa ] && kname='RSA 2048' || kname='ECDSA P-256'
	negotiated=()
	for t in "${active[@]}"; do
		negotiated+=(--meta "negotiated_$t=${TLSINFO[$t-$k]:-}")
	done
	python3 "$BENCH_DIR/report.py" --runs "$BENCH_TMP/runs-$k.tsv" --out "$OUT" --section tls --merge-key "$k" \
		--title "TLS, $kname certificate: s_time x$HS_CLIENTS -new / -reuse -www / (${DURATION}s), wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s keep-alive, $ROUNDS rounds, medians" \
		--targets "$TARGETS" --candidate sluice \
		--metric 'full_cps|full conn/s|%.0f' \
		--metric 'full_cpu_us|CPU us/full|%.1f' \
		--metric 'resumed_cps|resumed conn/s|%.0f' \
		--metric 'resumed_cpu_us|CPU us/resumed|%.1f' \
		--metric 'resumed_pct|resumed %|%.1f' \
		--metric 'rps|ka req/s|%.0f' \
		--metric 'p99_ms|ka p99 ms|%.3f' \
		--metric 'ka_cpu_us|CPU us/req|%.2f' \
		--metric 'non2xx|non-2xx|%.0f|sum' \
		--metric 'socket_errors|sock errs|%.0f|sum' \
		--metric 'steal_pct|steal %|%.1f' \
		--metric 'other_pct|other load %|%.1f' \
		--check 'full_cps|ge|1.0|haproxy|full handshakes/s' \
		--check 'full_cpu_us|le|1.0|haproxy|CPU per full handshake' \
		--check 'resumed_cps|ge|1.0|haproxy|resumed handshakes/s' \
		--check 'resumed_cpu_us|le|1.0|haproxy|CPU per resumed handshake' \
		--check 'rps|ge|1.0|haproxy|keep-alive requests/s' \
		--check 'ka_cpu_us|le|1.0|haproxy|CPU per keep-alive request' \
		--meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" --meta "key=$kname" \
		--meta "duration_s=$DURATION" --meta "rounds=$ROUNDS" --meta "warmup_s=$WARMUP" \
		--meta "hs_clients=$HS_CLIENTS" --meta "connections=$CONNS" --meta "wrk_threads=$WRK_THREADS" \
		--meta "full_cmd=openssl s_time -connect 127.0.0.1:PORT -time $DURATION -new -www / (x$HS_CLIENTS)" \
		--meta "resumed_cmd=openssl s_time -connect 127.0.0.1:PORT -time $DURATION -reuse -www / (x$HS_CLIENTS)" \
		--meta "wrk_cmd=wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --timeout 5s --latency https://127.0.0.1:PORT/" \
		--meta "parts=$TLS_PARTS" \
		"${negotiated[@]}" "${BENCH_META[@]}" "${BENCH_SKIPPED[@]}" || bench_die "report failed"
done
