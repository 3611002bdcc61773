#!/bin/sh
# tests/integration/run.sh: the integration suite as one automake test. Runs
# every tests/integration/*.test.mjs with Node's built-in test runner, one
# file at a time, against the sluice binary named by SLUICE_BIN.
#
# Environment (set by "make check"): SLUICE_BIN, SLUICE_SRCDIR,
# SLUICE_SANITIZERS=1 for a sanitizer build, NODE. Each run gets a fresh
# directory in SLUICE_TEST_TMPDIR (also TMPDIR), removed when the suite passes.
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

echo "node $("$node" --version), sluice $SLUICE_BIN, sanitizers ${SLUICE_SANITIZERS:-0}, tmp $SLUICE_TEST_TMPDIR"

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
