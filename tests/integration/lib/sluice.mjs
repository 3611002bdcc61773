// Starts and stops the real sluice binary for integration tests: writes a
// config into a private temp dir, spawns `sluice -c`, waits until its
// listeners accept, and exposes its logs. Does not start any backend (see
// backend.mjs) and does not speak HTTP (see client.mjs).

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TEST_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const SLUICE_BIN = path.resolve(process.env.SLUICE_BIN || path.join(TEST_DIR, '../../sluice'));

// An ASan/UBSan build runs several times slower: timing upper bounds are
// multiplied by SLOW, and RSS assertions are skipped.
export const SANITIZERS = process.env.SLUICE_SANITIZERS === '1';
export const SLOW = SANITIZERS ? 3 : 1;

const KEEP_TMP = process.env.SLUICE_KEEP_TMP === '1';

// Every process we spawn is killed by PID when this test file's process
// exits, so a failed test never leaves a sluice running.
const live = new Map();

function killAll() {
	for (const pid of live.keys()) {
		try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
	}
	live.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
	process.once(sig, () => { killAll(); process.exit(128 + os.constants.signals[sig]); });
}

/** Register a child process for the exit-time safety net. */
export function trackProcess(proc) {
	if (proc.pid) {
		live.set(proc.pid, proc);
		proc.once('exit', () => live.delete(proc.pid));
	}
	return proc;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A port that nothing listens on right now (bound on port 0, then closed). */
export function freePort(host = '127.0.0.1') {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.unref();
		srv.once('error', reject);
		srv.listen(0, host, () => {
			const { port } = srv.address();
			srv.close(() => resolve(port));
		});
	});
}

/** Whether the host can bind and connect to ::1. */
export async function hasIPv6Loopback() {
	try {
		await freePort('::1');
		return true;
	} catch {
		return false;
	}
}

function bracket(host) {
	return host.includes(':') ? `[${host}]` : host;
}

function serverAddress(s) {
	if (typeof s === 'string') return s;
	if (s.address) return s.address;
	if (s.backend) return s.backend.address;
	if (s.port) return `127.0.0.1:${s.port}`;
	throw new Error(`server ${JSON.stringify(s)} has no address`);
}

/**
 * A pool description from backends: poolOf([b1, b2], {retries: 1, weights: [2, 1]}).
 * Server names are the backends' names (or a, b, c... when absent).
 */
export function poolOf(backends, { retries, keepalive, weights, names } = {}) {
	return {
		retries,
		keepalive,
		servers: backends.map((b, i) => ({
			name: (names && names[i]) || (typeof b === 'object' && b.name) || String.fromCharCode(97 + i),
			address: serverAddress(b),
			weight: weights ? weights[i] : undefined,
		})),
	};
}

/**
 * Build sluice.conf text. opts:
 *   workers, logLevel, shutdownTimeout, accessLog ('file' | '-' | 'off' | path)
 *   listeners: [{name, host, port, backlog}] (filled by startSluice)
 *   pools: {name: {retries, keepalive, servers: [{name, address|backend|port, weight}]}}
 *   backends: [b...] shortcut for pools = {p: poolOf(backends)}
 *   routes: [{name, host, path, pool, sticky, stickyCookie}] (default: everything
 *           to the first pool); sticky: 'off' | 'cookie' | 'socketio' | 'cookie socketio'
 *   stickyKey: sticky_key (HMAC key of sticky cookies)
 *   timeouts: {client_header: '1s', ...}, limits: {max_header_size: '1k', ...}
 *   extra: raw text appended
 */
export function buildConfig(opts, ctx = {}) {
	const L = [];
	L.push(`workers = ${opts.workers ?? 1}`);
	L.push(`log_level = ${opts.logLevel ?? 'info'}`);
	const al = opts.accessLog ?? 'file';
	if (al === 'file') L.push(`access_log = "${ctx.accessLogPath}"`);
	else L.push(`access_log = "${al}"`);
	L.push(`shutdown_timeout = ${opts.shutdownTimeout ?? '2s'}`);
	if (opts.stickyKey !== undefined) L.push(`sticky_key = "${opts.stickyKey}"`);
	for (const l of ctx.listeners || opts.listeners || []) {
		L.push(`listener "${l.name}" {`);
		L.push(`\taddress = "${bracket(l.host)}:${l.port}"`);
		if (l.backlog !== undefined) L.push(`\tbacklog = ${l.backlog}`);
		L.push('}');
	}
	let pools = opts.pools;
	if (!pools && opts.backends) pools = { p: poolOf(opts.backends) };
	pools = pools || {};
	for (const [pname, p] of Object.entries(pools)) {
		L.push(`pool "${pname}" {`);
		if (p.retries !== undefined) L.push(`\tretries = ${p.retries}`);
		if (p.keepalive !== undefined) L.push(`\tkeepalive = ${p.keepalive}`);
		for (const s of p.servers) {
			const w = s.weight !== undefined ? ` weight = ${s.weight}` : '';
			L.push(`\tserver "${s.name}" { address = "${serverAddress(s)}"${w} }`);
		}
		L.push('}');
	}
	const first = Object.keys(pools)[0];
	const routes = opts.routes || (first ? [{ name: 'all', host: '*', path: '/', pool: first }] : []);
	routes.forEach((r, i) => {
		const parts = [];
		if (r.host !== undefined) parts.push(`host = "${r.host}"`);
		if (r.path !== undefined) parts.push(`path = "${r.path}"`);
		parts.push(`pool = "${r.pool}"`);
		if (r.sticky !== undefined) parts.push(`sticky = "${r.sticky}"`);
		if (r.stickyCookie !== undefined) parts.push(`sticky_cookie = "${r.stickyCookie}"`);
		L.push(`route "${r.name || `r${i}`}" { ${parts.join(' ')} }`);
	});
	if (opts.timeouts && Object.keys(opts.timeouts).length) {
		L.push('timeouts {');
		for (const [k, v] of Object.entries(opts.timeouts)) L.push(`\t${k} = ${v}`);
		L.push('}');
	}
	if (opts.limits && Object.keys(opts.limits).length) {
		L.push('limits {');
		for (const [k, v] of Object.entries(opts.limits)) L.push(`\t${k} = ${v}`);
		L.push('}');
	}
	if (opts.extra) L.push(opts.extra);
	return L.join('\n') + '\n';
}

function assertBinary() {
	if (!fs.existsSync(SLUICE_BIN)) {
		throw new Error(`sluice binary not found at ${SLUICE_BIN} (build it or set SLUICE_BIN)`);
	}
}

function tmpDir() {
	return fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-it-'));
}

/** Socket inodes held by pid, from /proc/PID/fd. */
function socketInodes(pid) {
	const out = new Set();
	let fds;
	try {
		fds = fs.readdirSync(`/proc/${pid}/fd`);
	} catch {
		return out;
	}
	for (const fd of fds) {
		try {
			const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
			if (m) out.add(m[1]);
		} catch { /* fd closed meanwhile */ }
	}
	return out;
}

/** Ports on which pid has a TCP socket in LISTEN state (IPv4 and IPv6). */
export function listeningPorts(pid) {
	const inodes = socketInodes(pid);
	const ports = new Set();
	for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
		let text;
		try {
			text = fs.readFileSync(f, 'utf8');
		} catch {
			continue;
		}
		for (const line of text.split('\n').slice(1)) {
			const c = line.trim().split(/\s+/);
			if (c.length < 10 || c[3] !== '0A') continue;
			if (!inodes.has(c[9])) continue;
			ports.add(parseInt(c[1].split(':')[1], 16));
		}
	}
	return ports;
}

function tcpProbe(host, port) {
	return new Promise((resolve) => {
		const s = net.connect({ host, port });
		s.once('connect', () => { s.destroy(); resolve(true); });
		s.once('error', () => resolve(false));
		s.setTimeout(500, () => { s.destroy(); resolve(false); });
	});
}

function parseJsonLines(text) {
	const out = [];
	for (const line of text.split('\n')) {
		if (!line.trim()) continue;
		try {
			out.push(JSON.parse(line));
		} catch {
			out.push({ __unparsable: line });
		}
	}
	return out;
}

const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer)|runtime error: |WARNING: ThreadSanitizer/;

/**
 * Start sluice. opts: everything buildConfig takes, or
 *   config: string (placeholders @PORT@ @HOST@ @DIR@ @ACCESS_LOG@ replaced) or
 *           function(ctx) -> string, where ctx = {port, host, dir, accessLogPath, listeners}
 *   listen: [{name, host}] listeners to create (default one on 127.0.0.1)
 *   t: a node:test context; when given, t.after() stops this sluice
 *   env: extra environment; args: extra CLI args
 *   ulimitNofile: start it under `sh -c 'ulimit -n N; exec sluice ...'`
 * Resolves when every listener accepts; rejects with stderr on early exit.
 */
export async function startSluice(opts = {}) {
	// A port picked by freePort() can be taken by someone else before
	// sluice binds it: try again with fresh ports when that happens.
	for (let attempt = 1; ; attempt++) {
		try {
			return await startSluiceOnce(opts);
		} catch (e) {
			const fixedPorts = (opts.listen || []).some((l) => l.port);
			if (attempt >= 3 || fixedPorts || !e.addressInUse) throw e;
		}
	}
}

async function startSluiceOnce(opts) {
	assertBinary();
	const dir = tmpDir();
	const accessLogPath = path.join(dir, 'access.log');
	const configPath = path.join(dir, 'sluice.conf');
	const listenSpec = opts.listen || [{ name: 'web', host: '127.0.0.1' }];
	const listeners = [];
	for (const l of listenSpec) {
		listeners.push({ ...l, port: l.port || (await freePort(l.host)) });
	}
	const ctx = { port: listeners[0].port, host: listeners[0].host, dir, accessLogPath, listeners };
	let text;
	if (typeof opts.config === 'function') text = opts.config(ctx);
	else if (typeof opts.config === 'string') {
		text = opts.config
			.replaceAll('@PORT@', String(ctx.port))
			.replaceAll('@HOST@', ctx.host)
			.replaceAll('@DIR@', dir)
			.replaceAll('@ACCESS_LOG@', accessLogPath);
	} else text = buildConfig(opts, ctx);
	fs.writeFileSync(configPath, text);

	const argv = [...(opts.args || []), '-c', configPath];
	const spawnOpts = {
		stdio: ['ignore', 'pipe', 'pipe'],
		env: { ...process.env, ...(opts.env || {}) },
	};
	// ulimitNofile: run under `ulimit -n N` through sh, which then execs
	// sluice, so that the PID stays the one we track.
	const proc = trackProcess(opts.ulimitNofile
		? spawn('sh', ['-c', `ulimit -n ${Number(opts.ulimitNofile)} && exec "$0" "$@"`, SLUICE_BIN, ...argv], spawnOpts)
		: spawn(SLUICE_BIN, argv, spawnOpts));
	let stdout = '';
	let stderr = '';
	proc.stdout.setEncoding('utf8');
	proc.stderr.setEncoding('utf8');
	proc.stdout.on('data', (d) => { stdout += d; });
	proc.stderr.on('data', (d) => { stderr += d; });
	let exitInfo = null;
	const exited = new Promise((resolve) => {
		proc.once('exit', (code, signal) => {
			exitInfo = { code, signal };
			resolve(exitInfo);
		});
	});
	const spawnError = new Promise((resolve) => proc.once('error', resolve));

	const s = {
		port: ctx.port,
		host: ctx.host,
		url: `http://${bracket(ctx.host)}:${ctx.port}`,
		listeners,
		pid: proc.pid,
		proc,
		dir,
		configPath,
		accessLogPath,
		config: text,
		exited,
		get exitInfo() { return exitInfo; },
		stdout: () => stdout,
		errorLog: () => stderr,
		/** Parsed JSON lines of the access log (file, or stdout when access_log = "-"). */
		accessLog() {
			if (text.includes('access_log = "-"')) return parseJsonLines(stdout);
			try {
				return parseJsonLines(fs.readFileSync(accessLogPath, 'utf8'));
			} catch {
				return [];
			}
		},
		/** Wait until pred(lines) (or lines.length >= n) holds; returns the lines. */
		async waitForAccessLog(pred, timeout = 3000) {
			const test = typeof pred === 'number' ? (l) => l.length >= pred : pred;
			const end = Date.now() + timeout * SLOW;
			for (;;) {
				const lines = s.accessLog();
				if (test(lines)) return lines;
				if (Date.now() > end) {
					throw new Error(`access log condition not met within ${timeout} ms; log:\n${lines.map((x) => JSON.stringify(x)).join('\n')}`);
				}
				await sleep(50);
			}
		},
		/** Wait until stderr matches re; returns the match. */
		async waitForLog(re, timeout = 3000) {
			const end = Date.now() + timeout * SLOW;
			for (;;) {
				const m = re.exec(stderr);
				if (m) return m;
				if (Date.now() > end) throw new Error(`stderr did not match ${re} within ${timeout} ms; stderr:\n${stderr}`);
				await sleep(50);
			}
		},
		/**
		 * Rewrite the running file with edit(text), send SIGHUP and wait
		 * until what stderr says from then on matches expect; returns that.
		 */
		async reload(edit, expect = /configuration reloaded/, timeout = 5000) {
			fs.writeFileSync(configPath, edit(fs.readFileSync(configPath, 'utf8')));
			const before = stderr.length;
			proc.kill('SIGHUP');
			const end = Date.now() + timeout * SLOW;
			while (!expect.test(stderr.slice(before))) {
				if (Date.now() > end) throw new Error(`no ${expect} after SIGHUP; stderr:\n${stderr}`);
				await sleep(20);
			}
			return stderr.slice(before);
		},
		/** A field of /proc/PID/status in bytes (VmHWM, VmRSS), or null. */
		procStatusBytes(field) {
			try {
				const st = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8');
				const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(st);
				return m ? Number(m[1]) * 1024 : null;
			} catch {
				return null;
			}
		},
		/** Send a signal without waiting. */
		kill(signal = 'SIGTERM') {
			if (signal === 'SIGTERM' || signal === 'SIGINT') s._stopSignalSent = true;
			if (!exitInfo) {
				try { process.kill(proc.pid, signal); } catch { /* gone */ }
			}
		},
		/**
		 * Wait up to timeoutMs for the process to exit on its own (no signal
		 * sent), then SIGKILL it. Resolves {code, signal, forced, elapsedMs}.
		 * Throws when a sanitizer reported an error on stderr.
		 */
		async waitExit(timeoutMs = 10000) {
			const t0 = Date.now();
			let forced = false;
			if (!exitInfo) {
				let handle;
				const timer = new Promise((r) => { handle = setTimeout(r, timeoutMs * SLOW, 'timeout'); });
				const outcome = await Promise.race([exited, timer]);
				clearTimeout(handle);
				if (outcome === 'timeout') {
					forced = true;
					s.kill('SIGKILL');
					await exited;
				}
			}
			// Let the pipes drain.
			await sleep(20);
			if (!KEEP_TMP && !s._cleaned) {
				s._cleaned = true;
				s._lastAccessLog = s.accessLog();
				s.accessLog = () => s._lastAccessLog;
				fs.rmSync(dir, { recursive: true, force: true });
			}
			if (SANITIZER_RE.test(stderr) && !s._reported) {
				s._reported = true;
				throw new Error(`sanitizer report on sluice stderr:\n${stderr}`);
			}
			return { ...exitInfo, forced, elapsedMs: Date.now() - t0 };
		},
		/**
		 * Send signal (once: a second SIGTERM may mean "stop now"), then
		 * waitExit(timeoutMs).
		 */
		async stop(signal = 'SIGTERM', timeoutMs = 10000) {
			if (!exitInfo && !s._stopSignalSent) {
				s._stopSignalSent = true;
				s.kill(signal);
			}
			return s.waitExit(timeoutMs);
		},
	};

	// Wait until every listener is in LISTEN state (checked through /proc,
	// so no probe connection shows up in the access log), or a TCP probe
	// succeeds where /proc is not readable.
	const haveProc = fs.existsSync(`/proc/${proc.pid}/fd`);
	const deadline = Date.now() + 10000 * SLOW;
	for (;;) {
		const err = await Promise.race([spawnError, sleep(50).then(() => null)]);
		if (err) throw new Error(`cannot spawn ${SLUICE_BIN}: ${err.message}`);
		if (exitInfo) {
			await sleep(20);
			fs.rmSync(dir, { recursive: true, force: true });
			const e = new Error(`sluice exited early (code ${exitInfo.code}, signal ${exitInfo.signal}); stderr:\n${stderr}\nconfig:\n${text}`);
			e.addressInUse = /address already in use/i.test(stderr);
			throw e;
		}
		let ready;
		if (haveProc) {
			const ports = listeningPorts(proc.pid);
			ready = listeners.every((l) => ports.has(l.port));
		} else {
			ready = (await Promise.all(listeners.map((l) => tcpProbe(l.host, l.port)))).every(Boolean);
		}
		if (ready) break;
		if (Date.now() > deadline) {
			s.kill('SIGKILL');
			throw new Error(`sluice did not listen within ${10000 * SLOW} ms; stderr:\n${stderr}\nconfig:\n${text}`);
		}
	}
	if (opts.t) opts.t.after(() => s.stop());
	return s;
}

/** Run sluice with args to completion: {code, signal, stdout, stderr}. */
export function runSluice(args, { timeout = 10000 } = {}) {
	assertBinary();
	const r = spawnSync(SLUICE_BIN, args, { encoding: 'utf8', timeout: timeout * SLOW, killSignal: 'SIGKILL' });
	if (r.error) throw r.error;
	return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/**
 * `sluice -t -c FILE` on text. Returns {code, stdout, stderr, file}; the file
 * is removed afterwards (its path stays in the messages).
 */
export function checkConfig(text, { name = 'sluice.conf' } = {}) {
	const dir = tmpDir();
	const file = path.join(dir, name);
	fs.writeFileSync(file, text);
	try {
		return { ...runSluice(['-t', '-c', file]), file };
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
}

/** A temp dir removed by t.after(). */
export function tempDir(t) {
	const dir = tmpDir();
	if (t) t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
	return dir;
}
