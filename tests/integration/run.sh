#!/bin/sh
# tests/integration/run.sh: the integration suite as one automake test. Runs
# every tests/integration/*.test.mjs with Node's built-in test runner, one
# file at a time, against the sluice binary named by SLUICE_BIN.
#
# Environment (set by "make check"): SLUICE_BIN, SLUICE_SRCDIR,
# SLUICE_BUILDDIR, SLUICE_SANITIZERS=1 for a sanitizer build, NODE; also
# SLUICE_NODE_MODULES to take the npm packages from elsewhere. Each run gets
# a fresh directory in SLUICE_TEST_TMPDIR (also TMPDIR), removed when the
# suite passes.
# Exit codes follow automake: 0 pass, 1 fail, 77 skip, 99 hard error.

here=$(cd "$(dirname "$0")" && pwd)
node=${NODE:-node}

if ! command -v "$node" >/dev/null 2>&1; then
	echo "SKIP: node not found; the integration tests need Node.js >= 20"
	exit 77
fi
if [ -z "${SLUICE_BIN:-}" ]; then
	SLUICE_BIN=$(pwd)/sluice
	export SLUICE_BIN
fi
if [ ! -x "$SLUICE_BIN" ]; then
	echo "ERROR: SLUICE_BIN=$SLUICE_BIN is not an executable (build sluice first)"
	exit 99
fi

set -- "$here"/*.test.mjs
if [ ! -f "$1" ]; then
	echo "SKIP: no $here/*.test.mjs yet"
	exit 77
fi

# The npm packages of package.json (ws, socket.io, socket.io-client: real
# peers for the WebSocket and Socket.io tests), found through
# SLUICE_NODE_MODULES by lib/deps.mjs. An installed tests/integration/
# node_modules is used as it is; otherwise (a fresh checkout, or the
# read-only source tree of "make distcheck") "npm ci" installs them into the
# build tree, once per package-lock.json. When that fails the other tests
# still run and the ones needing the packages fail saying why.
install_npm_deps() {
	if [ -n "${SLUICE_NODE_MODULES:-}" ]; then
		return 0
	fi
	if [ -d "$here/node_modules" ]; then
		SLUICE_NODE_MODULES=$here
		return 0
	fi
	deps=${SLUICE_BUILDDIR:-$(pwd)}/tests/integration-deps
	SLUICE_NODE_MODULES=$deps
	if [ -f "$deps/node_modules/.package-lock.json" ] &&
		cmp -s "$here/package-lock.json" "$deps/package-lock.json"; then
		return 0
	fi
	if ! command -v npm >/dev/null 2>&1; then
		echo "WARNING: npm not found: the tests that need ws/socket.io will fail (install npm, or run \"npm ci\" in $here)"
		return 0
	fi
	echo "npm ci in $deps"
	mkdir -p "$deps" &&
		rm -f "$deps/package-lock.json" &&
		cp "$here/package.json" "$here/package-lock.json" "$deps/" || return 0
	if command -v timeout >/dev/null 2>&1; then
		(cd "$deps" && timeout --kill-after=10 300 npm ci --no-audit --no-fund) && return 0
	else
		(cd "$deps" && npm ci --no-audit --no-fund) && return 0
	fi
	# A half-done install must not pass the check above next time.
	rm -f "$deps/package-lock.json"
	echo "WARNING: npm ci failed in $deps: the tests that need ws/socket.io will fail"
}
if [ -f "$here/package-lock.json" ]; then
	install_npm_deps
fi
if [ -n "${SLUICE_NODE_MODULES:-}" ]; then
	export SLUICE_NODE_MODULES
fi

major=$("$node" -p 'process.versions.node.split(".")[0]')
minor=$("$node" -p 'process.versions.node.split(".")[1]')

# Per-test and whole-suite limits, so that a stuck test fails instead of
# hanging "make check"; the suite limit stays below quickstart's limit on
# "make check", so the log still says which test hung. Sanitizer builds run
# several times slower.
if [ "${SLUICE_SANITIZERS:-0}" = 1 ]; then
	test_timeout_ms=${SLUICE_TEST_TIMEOUT_MS:-180000}
	suite_timeout_s=${SLUICE_SUITE_TIMEOUT_S:-840}
else
	test_timeout_ms=${SLUICE_TEST_TIMEOUT_MS:-60000}
	suite_timeout_s=${SLUICE_SUITE_TIMEOUT_S:-540}
fi

SLUICE_TEST_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-it.XXXXXX") || exit 99
TMPDIR=$SLUICE_TEST_TMPDIR
export SLUICE_TEST_TMPDIR TMPDIR

opts="--test --test-reporter=spec"
# --test-concurrency and --test-timeout arrived in Node 20.10 and 20.11;
# older runners get one process per file, which is serial too.
one_by_one=no
if [ "$major" -gt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -ge 11 ]; }; then
	opts="$opts --test-concurrency=1 --test-timeout=$test_timeout_ms"
else
	one_by_one=yes
fi

echo "node $("$node" --version), sluice $SLUICE_BIN, sanitizers ${SLUICE_SANITIZERS:-0}, npm packages from ${SLUICE_NODE_MODULES:-nowhere}, tmp $SLUICE_TEST_TMPDIR"

# timeout(1) puts the runner in its own process group and, on expiry, signals
# the whole group: node, its test files and every sluice or backend they
# started.
run_node() {
	if command -v timeout >/dev/null 2>&1; then
		# shellcheck disable=SC2086
		timeout --kill-after=20 "$suite_timeout_s" "$node" $opts "$@"
	else
		# shellcheck disable=SC2086
		"$node" $opts "$@"
	fi
}

status=0
if [ "$one_by_one" = yes ]; then
	for f in "$@"; do
		run_node "$f" || status=1
	done
else
	run_node "$@" || status=$?
fi

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
	echo "FAIL: the integration suite did not finish within ${suite_timeout_s}s"
	status=1
fi
if [ "$status" -eq 0 ]; then
	rm -rf "$SLUICE_TEST_TMPDIR"
else
	echo "integration files kept in $SLUICE_TEST_TMPDIR"
	status=1
fi
exit "$status"
