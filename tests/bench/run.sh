#!/usr/bin/env bash
# Entry point of `make bench`: runs the benchmark sections named on the
# command line (default: all known ones) one after the other. Each section is
# its own script (http.sh, ws.sh, tls.sh, ratelimit.sh) sharing lib.sh.
# Exit status: 0 when every section ran (a MISS is a result, not a failure),
# non-zero when a section could not run.

# make runs this with $(SHELL), which may be dash: switch to bash before
# any bash syntax is parsed.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi

set -u
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECTIONS_KNOWN="http ws tls ratelimit"

usage() {
	cat <<USAGE
usage: $0 [SECTION...]    sections: $SECTIONS_KNOWN (default: all)
environment: SLUICE_BIN (default $BENCH_DIR/../../sluice), DURATION (10),
  ROUNDS (5), CONNS (64), WARMUP (2), TARGETS ("backend haproxy nginx sluice";
  http: "backend haproxy nginx sluice floor"), FLOOR_BIN (default
  tests/bench/floor of the build tree), BENCH_OUT (JSON path),
  PROXY_HEADERS (1), WRK_THREADS (1), BENCH_KEEP (0);
  ws: WS_CONNS (200), WS_SIZE (64), WS_THREADS (1), IDLE_CONNS (5000),
  IDLE_ROUNDS (3), IDLE_CONCURRENCY (100), IDLE_SETTLE (2), WS_PARTS ("echo idle"),
  SLUICE_NODE_MODULES (tests/integration);
  tls: DURATION (5), ROUNDS (3), WARMUP (1), HS_CLIENTS (4), KEY_TYPES ("ecdsa rsa"),
  TLS_PARTS ("full resumed keepalive"), TARGETS ("haproxy sluice")
  ratelimit: DURATION ROUNDS CONNS WARMUP as http, LEASE_MAX (64)
USAGE
}

case ${1:-} in
-h | --help) usage; exit 0 ;;
esac

sections=("$@")
[ "${#sections[@]}" -gt 0 ] || read -r -a sections <<<"$SECTIONS_KNOWN"

# Sections run in the background so that a signal reaches this script at
# once; it is passed on to the section, whose EXIT trap stops its processes.
child=
forward() {
	[ -n "$child" ] && kill -"$1" "$child" 2>/dev/null
	wait "$child" 2>/dev/null
	exit "$2"
}
trap 'forward INT 130' INT
trap 'forward TERM 143' TERM

status=0
for s in "${sections[@]}"; do
	case " $SECTIONS_KNOWN " in
	*" $s "*) ;;
	*) echo "unknown section '$s'" >&2; usage >&2; exit 2 ;;
	esac
	echo "== bench section: $s"
	bash "$BENCH_DIR/$s.sh" &
	child=$!
	wait "$child"
	rc=$?
	child=
	if [ "$rc" != 0 ]; then
		status=$rc
		echo "== section $s failed (exit $rc)" >&2
	fi
done
exit "$status"
