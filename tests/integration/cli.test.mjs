// Command line: -v, -h, -t config checks with FILE:LINE errors, and a bad
// config refusing to start.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { SLUICE_BIN, SLOW, checkConfig, freePort, runSluice, tempDir, trackProcess } from './lib/sluice.mjs';

const GOOD = (port = 18080) => `workers = 1
log_level = info
access_log = "off"
listener "web" {
	address = "127.0.0.1:${port}"
}
pool "p" {
	server "a" { address = "127.0.0.1:3001" weight = 2 }
	server "b" { address = "127.0.0.1:3002" }
}
route "all" { host = "*" path = "/" pool = "p" }
timeouts {
	connect = 500ms
	client_header = 1s
}
`;

function escapeRe(s) {
	return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Line number (1-based) of the first line containing marker. */
function lineOf(text, marker) {
	const i = text.split('\n').findIndex((l) => l.includes(marker));
	assert.ok(i >= 0, `marker ${marker} not in config`);
	return i + 1;
}

function assertConfigError(text, marker, mention) {
	const r = checkConfig(text);
	assert.equal(r.code, 1, `exit code 1 expected; stderr:\n${r.stderr}`);
	const line = lineOf(text, marker);
	const re = new RegExp(`^${escapeRe(r.file)}:${line}: \\S.*$`, 'm');
	assert.match(r.stderr, re, `stderr should name ${r.file}:${line}; got:\n${r.stderr}`);
	if (mention) {
		const errLine = re.exec(r.stderr)[0];
		assert.match(errLine, mention, `error should mention ${mention}: ${errLine}`);
	}
	assert.doesNotMatch(r.stderr, /configuration OK/);
}

test('-v prints "sluice VERSION" and exits 0', () => {
	const r = runSluice(['-v']);
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stdout + r.stderr, /^sluice \S+/m);
});

test('-h prints usage and exits 0', () => {
	const r = runSluice(['-h']);
	assert.equal(r.code, 0, r.stderr);
	const out = r.stdout + r.stderr;
	assert.match(out, /usage/i);
	assert.match(out, /-c/);
	assert.match(out, /-t/);
});

test('-t on a valid config prints "FILE: configuration OK" and exits 0', () => {
	const r = checkConfig(GOOD());
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stderr, new RegExp(`^${escapeRe(r.file)}: configuration OK$`, 'm'));
});

test('-t accepts every directive of the reference config', () => {
	const text = `workers = 2
log_level = debug
access_log = "-"
shutdown_timeout = 30s
listener "web" {
	address = "0.0.0.0:8080"
	backlog = 511
}
listener "v6" {
	address = "[::]:8081"
}
listener "any" {
	address = "*:8082"
}
pool "chat" {
	retries = 2
	keepalive = 32
	server "a" { address = "127.0.0.1:3001" weight = 2 }
	server "b" { address = "127.0.0.1:3002" }
}
route "exact" { host = "chat.example.com" path = "/api" pool = "chat" }
route "wild" { host = "*.example.com" pool = "chat" }
route "all" { host = "*" path = "/" pool = "chat" }
timeouts {
	client_header = 10s
	client_idle = 2m
	connect = 3s
	response_header = 30
	body_idle = 60s
	upstream_idle = 1h
}
limits {
	max_header_size = 16k
	max_headers = 100
	max_uri = 8k
}
`;
	const r = checkConfig(text);
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stderr, /configuration OK/);
});

test('-t: unknown option -> exit 1 with FILE:LINE naming it', () => {
	const text = GOOD().replace('log_level = info\n', 'log_level = info\nbogus_option = 1\n');
	assertConfigError(text, 'bogus_option', /bogus_option/);
});

test('-t: bad server address -> exit 1 with FILE:LINE', () => {
	const text = GOOD().replace('server "b" { address = "127.0.0.1:3002" }', 'server "b" { address = "127.0.0.1:notaport" }');
	assertConfigError(text, 'notaport', /address|notaport/i);
});

test('-t: bad listener address -> exit 1 with FILE:LINE', () => {
	const text = GOOD().replace('address = "127.0.0.1:18080"', 'address = "300.1.2.3:80"');
	assertConfigError(text, '300.1.2.3', /address|300\.1\.2\.3/i);
});

test('-t: route naming an unknown pool -> exit 1 with FILE:LINE', () => {
	const text = GOOD().replace('route "all" { host = "*" path = "/" pool = "p" }', 'route "all" { host = "*" path = "/" pool = "nope" }');
	assertConfigError(text, 'pool = "nope"', /nope/);
});

test('-t: bad duration -> exit 1 with FILE:LINE', () => {
	const text = GOOD().replace('connect = 500ms', 'connect = 5parsecs');
	assertConfigError(text, '5parsecs', /connect|5parsecs/);
});

test('-t: duplicate server name in a pool -> exit 1 with FILE:LINE of the duplicate', () => {
	const text = GOOD().replace('server "b" { address = "127.0.0.1:3002" }',
		'server "b" { address = "127.0.0.1:3002" }\n\tserver "a" { address = "127.0.0.1:3003" } # dup');
	assertConfigError(text, '# dup', /\ba\b|dup/i);
});

/** Whether a TCP connect to port is refused. */
function refused(port) {
	return new Promise((r) => {
		const s = net.connect({ host: '127.0.0.1', port });
		s.once('connect', () => { s.destroy(); r(false); });
		s.once('error', (e) => r(e.code === 'ECONNREFUSED'));
	});
}

/**
 * Run sluice -c on text, which must make it exit: its exit code and stderr.
 * One still running after 5 s is killed and fails the test, saying whether
 * it was listening on port.
 */
async function runToExit(t, text, port) {
	const file = path.join(tempDir(t), 'sluice.conf');
	fs.writeFileSync(file, text);
	const proc = trackProcess(spawn(SLUICE_BIN, ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
	let stderr = '';
	proc.stderr.on('data', (d) => { stderr += d; });
	const exit = await Promise.race([
		new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal }))),
		new Promise((r) => setTimeout(r, 5000 * SLOW, null).unref()),
	]);
	if (!exit) {
		const listening = !(await refused(port));
		process.kill(proc.pid, 'SIGKILL');
		assert.fail(`sluice -c kept running (listening: ${listening})`);
	}
	return { code: exit.code, stderr, file };
}

test('-c with a bad config exits 1 without listening', async (t) => {
	const port = await freePort();
	const text = GOOD(port).replace('log_level = info\n', 'log_level = info\nbogus_option = 1\n');
	const { code, stderr, file } = await runToExit(t, text, port);
	assert.equal(code, 1, `exit code; stderr:\n${stderr}`);
	assert.match(stderr, new RegExp(`${escapeRe(file)}:${lineOf(text, 'bogus_option')}: `));
	assert.ok(await refused(port), 'nothing listens on the configured port');
});

test('-c with a listener whose address is taken exits 1 naming it', async (t) => {
	const port = await freePort();
	// Someone else holds the second listener's address (without SO_REUSEPORT).
	const taken = net.createServer();
	await new Promise((r) => taken.listen(0, '127.0.0.1', r));
	t.after(() => taken.close());
	const busy = taken.address().port;
	const text = GOOD(port).replace('pool "p"', `listener "second" { address = "127.0.0.1:${busy}" }\npool "p"`);
	const { code, stderr } = await runToExit(t, text, port);
	assert.equal(code, 1, `exit code; stderr:\n${stderr}`);
	assert.match(stderr, new RegExp(`listener "second": bind\\(127\\.0\\.0\\.1:${busy}\\) failed: Address already in use`));
});

test('-t on a missing file exits 1', () => {
	const r = runSluice(['-t', '-c', '/nonexistent/sluice.conf']);
	assert.equal(r.code, 1);
	assert.match(r.stderr, /nonexistent\/sluice\.conf/);
});
