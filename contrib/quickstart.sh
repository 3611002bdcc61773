#!/usr/bin/env bash
# contrib/quickstart.sh: from a fresh Debian 12 machine (as root) to a running
# demo or a full test run. Installs what is missing, builds out of tree in
# build/ (and build-asan/ for the sanitizer build), then:
#   run    the demo: three Socket.io chat servers (contrib/demo/chat) on
#          3001-3003 behind sluice on :8080, with conf/sluice.conf
#   check  "make check" in a normal build, then in an ASan+UBSan debug build
set -euo pipefail

cd "$(dirname "$0")/.."
top=$(pwd)

packages=(
	build-essential autoconf automake libtool pkg-config
	libevent-dev libssl-dev libhiredis-dev libconfuse-dev libcmocka-dev
	node-llhttp curl openssl redis-server haproxy nginx-light wrk
	python3 procps iproute2
)
# Limits for each "make check" (build included), so a stuck test cannot hang
# CI: both together stay under 25 minutes.
check_timeout=${SLUICE_CHECK_TIMEOUT:-600}
check_timeout_asan=${SLUICE_CHECK_TIMEOUT_ASAN:-900}
jobs=${SLUICE_JOBS:-2}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

usage() {
	cat >&2 <<EOF
usage: $0 run|check
  run    install dependencies, build, start three demo chat servers
         (a:3001 v1, b:3002 v1, c:3003 v2) and sluice on
         http://localhost:8080/ until Ctrl-C
  check  install dependencies, build, run "make check" in a normal build and
         in a sanitizer build (build-asan/); exits non-zero on any failure
EOF
	exit 2
}

# ------------------------------------------------------------------ deps

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $*"
	fi
}

missing_packages() {
	local p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$'; then
			printf '%s\n' "$p"
		fi
	done
}

policy_rc_made=no
cleanup_policy_rc() {
	if [ "$policy_rc_made" = yes ]; then
		as_root rm -f /usr/sbin/policy-rc.d
		policy_rc_made=no
	fi
}

apt_install() {
	# Packages such as redis-server and nginx start their daemon on install;
	# the tests start their own, so keep the package scripts from doing it.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		trap cleanup_policy_rc EXIT
		printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
		as_root chmod 755 /usr/sbin/policy-rc.d
		policy_rc_made=yes
	fi
	local rc=0
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "$@" || rc=$?
	if [ "$rc" -ne 0 ]; then
		# Missing or stale package lists: refresh once and retry.
		say "apt-get install failed; running apt-get update and retrying"
		as_root apt-get update
		rc=0
		as_root env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends "$@" || rc=$?
	fi
	cleanup_policy_rc
	trap - EXIT
	return "$rc"
}

install_deps() {
	local want=("${packages[@]}")
	# Node.js 20 may come from elsewhere than Debian; only fall back to
	# Debian's nodejs and npm when there is no node at all.
	if ! command -v node >/dev/null 2>&1; then
		want+=(nodejs npm)
	fi
	local missing
	missing=$(missing_packages "${want[@]}")
	if [ -n "$missing" ]; then
		# shellcheck disable=SC2086
		say "installing:" $missing
		# shellcheck disable=SC2086
		apt_install $missing
	fi
	command -v node >/dev/null 2>&1 || die "node not found after installing nodejs"
	local major
	major=$(node -p 'process.versions.node.split(".")[0]')
	if [ "$major" -lt 20 ]; then
		say "warning: node $(node --version) is older than 20; the integration tests expect Node.js 20"
	fi
	install_npm_deps
}

# npm packages for the integration tests, only when package.json asks for any.
install_npm_deps() {
	npm_deps_in "$top/tests/integration"
}

# npm_deps_in DIR: "npm ci" in DIR when its package.json lists dependencies,
# unless node_modules was installed from this very package-lock.json (a
# checksum stamp that npm ci's fresh node_modules does not have: file times
# are no guide after a checkout).
npm_deps_in() {
	local dir=$1
	[ -f "$dir/package.json" ] || return 0
	local ndeps
	ndeps=$(node -e '
		const p = require(process.argv[1]);
		console.log(Object.keys({...p.dependencies, ...p.devDependencies}).length);
	' "$dir/package.json")
	[ "$ndeps" -gt 0 ] || return 0
	command -v npm >/dev/null 2>&1 || apt_install npm
	if [ -f "$dir/package-lock.json" ]; then
		local stamp=$dir/node_modules/.quickstart-lock.sha256 sum
		sum=$(sha256sum <"$dir/package-lock.json")
		if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
			return 0
		fi
		say "npm ci in ${dir#"$top"/}"
		(cd "$dir" && npm ci --no-audit --no-fund) || return 1
		printf '%s\n' "$sum" >"$stamp"
	else
		say "npm install in ${dir#"$top"/} (no package-lock.json)"
		(cd "$dir" && npm install --no-audit --no-fund)
	fi
}

# ------------------------------------------------------------------ build

in_tree_configured() { [ -f "$top/config.status" ]; }

# build_in DIR [configure args...]: configure (once) and make in DIR.
build_in() {
	local dir=$1; shift
	if [ ! -x "$top/configure" ] || [ "$top/configure.ac" -nt "$top/configure" ] ||
		[ "$top/Makefile.am" -nt "$top/Makefile.in" ]; then
		say "autogen.sh"
		"$top/autogen.sh" || return 1
	fi
	if [ "$dir" != "$top" ]; then
		if in_tree_configured; then
			say "the source tree is configured in place (./config.status): run 'make distclean' there first; quickstart builds in build/ and build-asan/"
			return 1
		fi
		mkdir -p "$dir" || return 1
	fi
	if [ ! -f "$dir/Makefile" ]; then
		say "configure $* (in ${dir#"$top"/})"
		(cd "$dir" && "$top/configure" "$@") || return 1
	fi
	say "make -j$jobs (in ${dir#"$top"/})"
	make -C "$dir" -j"$jobs" || return 1
}

# The normal build: in place if someone configured the tree by hand, else build/.
main_builddir() {
	if in_tree_configured; then echo "$top"; else echo "$top/build"; fi
}

# ------------------------------------------------------------------ run

pids=()
stop_started() {
	local pid i alive
	# Ctrl-C already sent SIGINT to the whole foreground group: give what
	# we started 3 s to stop gracefully on its own, since a second signal
	# tells sluice to cut its remaining connections.
	for ((i = 0; i < 30; i++)); do
		alive=0
		for pid in "${pids[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	pids=()
}

port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_http URL SECONDS: until URL answers, or fail.
wait_http() {
	local url=$1 secs=$2 i
	for ((i = 0; i < secs * 10; i++)); do
		curl -fs -o /dev/null --max-time 1 "$url" && return 0
		sleep 0.1
	done
	return 1
}

# The demo chat instances: NAME PORT VERSION. c runs another version, to
# show on the page which version answered.
demo_servers=(
	"a 3001 v1"
	"b 3002 v1"
	"c 3003 v2"
)

cmd_run() {
	install_deps
	npm_deps_in "$top/contrib/demo"
	local b
	b=$(main_builddir)
	build_in "$b"
	local conf=$top/conf/sluice.conf
	[ -f "$conf" ] || die "$conf not found"

	local s name port version
	for port in 3001 3002 3003 8080; do
		if port_busy "$port"; then
			die "port $port is already in use"
		fi
	done

	trap 'stop_started' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	for s in "${demo_servers[@]}"; do
		read -r name port version <<<"$s"
		node "$top/contrib/demo/chat/server.js" "$name" "$port" "$version" & pids+=($!)
	done
	for s in "${demo_servers[@]}"; do
		read -r name port version <<<"$s"
		wait_http "http://127.0.0.1:$port/health" 10 ||
			die "demo chat server $name did not start on :$port"
	done

	"$b/sluice" -t -c "$conf" || die "$conf does not pass 'sluice -t'"
	"$b/sluice" -c "$conf" & pids+=($!)
	local sluice_pid=$!
	if ! wait_http http://127.0.0.1:8080/health 10; then
		kill -0 "$sluice_pid" 2>/dev/null || die "sluice exited at start"
		die "sluice does not answer on :8080"
	fi
	# The chat needs the Socket.io path too, not only the page.
	wait_http "http://127.0.0.1:8080/socket.io/socket.io.js" 5 ||
		die "sluice does not pass /socket.io/ on to the chat servers"

	cat <<EOF

  sluice is running: open http://localhost:8080/ in two or more browser tabs.
  Chat servers a (:3001, v1), b (:3002, v1) and c (:3003, v2); each page
  shows which server and version served it and which one holds its
  Socket.io connection. The servers have no adapter: a message reaches the
  tabs connected to the same server only.
  Ctrl-C stops sluice and the three chat servers.

EOF
	# Returns when sluice exits or a signal arrives; the traps clean up.
	wait "$sluice_pid" || true
}

# ------------------------------------------------------------------ check

# Counts individual test cases in a build dir's logs: cmocka's "[  PASSED  ]"
# and "[  FAILED  ]" lines, node's "ℹ pass" / "ℹ fail" / "ℹ skipped".
passed=0
failed=0
skipped=0
sum_of() { sed -n "$1" "$2" | awk '{ s += $1 } END { print s + 0 }'; }
count_results() {
	local dir=$1 f n
	while IFS= read -r -d '' f; do
		[ "$(basename "$f")" = test-suite.log ] && continue
		n=$(sum_of 's/^\[  PASSED  \] \([0-9][0-9]*\) test.*/\1/p' "$f")
		passed=$((passed + n))
		n=$(sum_of 's/^\[  FAILED  \] \([0-9][0-9]*\) test.*/\1/p' "$f")
		failed=$((failed + n))
		n=$(sum_of 's/^\[  SKIPPED \] \([0-9][0-9]*\) test.*/\1/p' "$f")
		skipped=$((skipped + n))
		n=$(sum_of 's/^ℹ pass \([0-9][0-9]*\)$/\1/p' "$f")
		passed=$((passed + n))
		n=$(sum_of 's/^ℹ fail \([0-9][0-9]*\)$/\1/p' "$f")
		failed=$((failed + n))
		n=$(sum_of 's/^ℹ skipped \([0-9][0-9]*\)$/\1/p' "$f")
		skipped=$((skipped + n))
		# A test program that crashed or was killed printed no summary.
		if grep -q '^:test-result: \(FAIL\|ERROR\)' "${f%.log}.trs" 2>/dev/null &&
			! grep -q '^\[  FAILED  \]\|^ℹ fail [1-9]' "$f"; then
			failed=$((failed + 1))
		fi
	done < <(find "$dir/tests" -name '*.log' -print0 2>/dev/null)
}

# check_in DIR LABEL SECONDS: make check with a time limit; prints the
# failures' logs.
check_in() {
	local dir=$1 label=$2 limit=$3 rc=0
	say "make check ($label, in ${dir#"$top"/})"
	timeout --kill-after=30 "$limit" make -C "$dir" -j"$jobs" check || rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		say "make check ($label) did not finish within ${limit}s"
	fi
	if [ "$rc" -ne 0 ] && [ -f "$dir/test-suite.log" ]; then
		say "test-suite.log ($label):"
		cat "$dir/test-suite.log" >&2
	fi
	count_results "$dir"
	return "$rc"
}

cmd_check() {
	install_deps
	local b status=0
	b=$(main_builddir)
	build_in "$b" || status=1
	if [ "$status" -eq 0 ]; then
		check_in "$b" normal "$check_timeout" || status=1
	fi

	local asan=$top/build-asan asan_ok=yes
	if in_tree_configured; then
		say "skipping the sanitizer build: the source tree is configured in place (run 'make distclean' there)"
		status=1
	else
		build_in "$asan" --enable-sanitizers --enable-debug || asan_ok=no
		if [ "$asan_ok" = yes ]; then
			check_in "$asan" sanitizers "$check_timeout_asan" || status=1
		else
			status=1
		fi
	fi

	echo
	if [ "$status" -eq 0 ]; then
		say "all checks passed (normal and sanitizer builds)"
	else
		say "checks FAILED"
	fi
	echo "check: $passed passed, $failed failed, $skipped skipped"
	return "$status"
}

# ------------------------------------------------------------------ main

[ $# -eq 1 ] || usage
case $1 in
run) cmd_run ;;
check) cmd_check ;;
-h|--help|help) usage ;;
*) usage ;;
esac
