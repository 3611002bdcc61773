// WebSocket load generator of the `ws` benchmark section. It speaks the
// protocol on raw sockets with frames built once (no `ws` client, no frame
// parser) so that the client spends as little CPU per round trip as it can,
// and it samples the targets' CPU time, RSS and the machine's ticks from
// /proc itself, at the exact edges of the measured window.
//
//   echo  --port P --conns N --size B --warmup S --duration S [--threads T]
//         [--pids "PID..."] [--backend-pids "PID..."]
//         N connections, each sending a B-byte binary message and waiting for
//         its echo before sending the next; connection set-up and the warm-up
//         are outside the window. T worker threads share the connections.
//   idle  --port P --conns N [--concurrency C] [--settle S] [--pids "PID..."]
//         [--backend-pids "PID..."]
//         N idle WebSockets opened C at a time; RSS of the PIDs (and their
//         children) read before opening and S seconds after the last opened.
//   check --port P [--size B]
//         one WebSocket, one echo, a clean close: exit 0, or 1 with the reason.
//
// Prints one JSON object on stdout (echo, idle); errors go to stderr with
// exit status 1 (the target misbehaved) or 2 (bad usage).

import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const HANDSHAKE_TIMEOUT_MS = 10000;
const CLOSE_TIMEOUT_MS = 10000;

// One key for every connection: the proxies do not care, and the expected
// Sec-WebSocket-Accept is then computed once.
const KEY = crypto.randomBytes(16).toString('base64');
const ACCEPT = crypto.createHash('sha1').update(KEY + GUID).digest('base64');

function die(msg, code = 1) {
	process.stderr.write(`ws-load: ${msg}\n`);
	process.exit(code);
}

function parseArgs(argv) {
	const opts = { mode: argv[0] };
	for (let i = 1; i < argv.length; i += 2) {
		if (!argv[i].startsWith('--') || i + 1 >= argv.length)
			die(`bad argument "${argv[i]}"`, 2);
		opts[argv[i].slice(2)] = argv[i + 1];
	}
	return opts;
}

function intOpt(opts, name, dflt) {
	const v = opts[name] === undefined ? dflt : Number(opts[name]);
	if (!Number.isFinite(v) || v < 0)
		die(`--${name} must be a number, got "${opts[name]}"`, 2);
	return v;
}

function pidList(text) {
	return (text || '').split(/[\s,]+/).filter((p) => /^[0-9]+$/.test(p));
}

// --- frames ----------------------------------------------------------------

function lengthHeader(first, masked, len) {
	const m = masked ? 0x80 : 0;
	if (len < 126)
		return Buffer.from([first, m | len]);
	if (len < 65536)
		return Buffer.from([first, m | 126, len >> 8, len & 0xff]);
	die('message size over 65535 bytes is not supported', 2);
}

// A client frame must be masked (RFC 6455 5.3); the masked bytes are built
// once and the same Buffer is written for every message.
function clientFrame(opcode, payload) {
	const mask = crypto.randomBytes(4);
	const masked = Buffer.alloc(payload.length);
	for (let i = 0; i < payload.length; i++)
		masked[i] = payload[i] ^ mask[i & 3];
	return Buffer.concat([lengthHeader(0x80 | opcode, true, payload.length), mask, masked]);
}

function serverFrame(opcode, payload) {
	return Buffer.concat([lengthHeader(0x80 | opcode, false, payload.length), payload]);
}

function closeFrame(code) {
	const p = Buffer.alloc(2);
	p.writeUInt16BE(code);
	return clientFrame(0x8, p);
}

const CLOSE_FRAME = closeFrame(1000);

// --- handshake -------------------------------------------------------------

function upgradeRequest(port) {
	return `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
		`Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

// Every socket of a thread reads into this one buffer and its `onBytes`
// consumes the bytes at once: no Buffer is allocated per read, and reads
// are not turned into stream events.
const READ_BUF = Buffer.allocUnsafe(65536);

function ignoreBytes() {}

function connectRaw(port) {
	const sock = net.connect({
		host: '127.0.0.1',
		port,
		onread: { buffer: READ_BUF, callback: (n, buf) => { sock.onBytes(buf, n); } },
	});
	sock.onBytes = ignoreBytes;
	return sock;
}

// Resolves with the socket once a valid 101 has arrived (the accept key
// proves the answer comes from a WebSocket server, not from the proxy).
function openWs(port) {
	return new Promise((resolve, reject) => {
		const sock = connectRaw(port);
		let head = null;
		let settled = false;
		const timer = setTimeout(() => fail(new Error(`no 101 within ${HANDSHAKE_TIMEOUT_MS} ms`)), HANDSHAKE_TIMEOUT_MS);

		function fail(err) {
			if (settled)
				return;
			settled = true;
			clearTimeout(timer);
			sock.removeAllListeners();
			sock.onBytes = ignoreBytes;
			sock.on('error', () => {});
			sock.destroy();
			reject(err);
		}
		sock.setNoDelay(true);
		sock.on('connect', () => sock.write(upgradeRequest(port)));
		sock.on('error', (e) => fail(e));
		sock.on('close', () => fail(new Error('connection closed before the 101')));
		sock.onBytes = (buf, n) => {
			const chunk = Buffer.from(buf.subarray(0, n));
			head = head ? Buffer.concat([head, chunk]) : chunk;
			const end = head.indexOf('\r\n\r\n');
			if (end < 0) {
				if (head.length > 65536)
					fail(new Error('response head over 64 KiB'));
				return;
			}
			const text = head.subarray(0, end).toString('latin1');
			const status = text.split('\r\n', 1)[0];
			if (!/^HTTP\/1\.1 101 /.test(status))
				return fail(new Error(`expected a 101 answer, got "${status}"`));
			const m = /\r\nsec-websocket-accept:[ \t]*([^\r]*)/i.exec(text);
			if (!m || m[1].trim() !== ACCEPT)
				return fail(new Error('101 without the right Sec-WebSocket-Accept'));
			if (end + 4 !== head.length)
				return fail(new Error('unexpected bytes after the 101 head'));
			settled = true;
			clearTimeout(timer);
			sock.removeAllListeners();
			sock.onBytes = ignoreBytes;
			resolve(sock);
		};
	});
}

// Opens n WebSockets, at most `concurrency` handshakes at a time.
async function openMany(port, n, concurrency) {
	const socks = new Array(n);
	let next = 0;
	async function lane() {
		while (next < n) {
			const i = next++;
			socks[i] = await openWs(port);
			// Set before any I/O callback can run: an error then only
			// shows up as an early close.
			socks[i].on('error', () => {});
		}
	}
	await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
	return socks;
}

// Sends a close frame on every socket and waits for the server to end the
// connection (so that TIME_WAIT lands on the server side, not on our
// ephemeral ports); whatever is left after the timeout is destroyed.
function closeAll(socks) {
	return new Promise((resolve) => {
		let left = 0;
		const timer = setTimeout(() => {
			for (const s of socks)
				if (s && !s.destroyed)
					s.destroy();
			resolve();
		}, CLOSE_TIMEOUT_MS);
		const done = () => {
			if (--left === 0) {
				clearTimeout(timer);
				resolve();
			}
		};
		for (const s of socks) {
			if (!s || s.destroyed)
				continue;
			left++;
			s.removeAllListeners('close');
			s.onBytes = ignoreBytes;
			s.on('error', () => {});
			s.once('close', done);
			s.write(CLOSE_FRAME);
		}
		if (left === 0) {
			clearTimeout(timer);
			resolve();
		}
	});
}

// --- /proc sampling --------------------------------------------------------

function childrenOf(pid) {
	const out = [];
	let tasks;
	try {
		tasks = fs.readdirSync(`/proc/${pid}/task`);
	} catch {
		return out;
	}
	for (const t of tasks) {
		try {
			for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'latin1').split(' '))
				if (/^[0-9]+$/.test(c))
					out.push(c);
		} catch {
			// the thread ended meanwhile
		}
	}
	return out;
}

// The PIDs and their children one level deep (nginx master + worker), as
// lib.sh's pid_tree.
function pidTree(pids) {
	const all = [];
	for (const p of pids)
		all.push(p, ...childrenOf(p));
	return all;
}

// utime + stime in clock ticks, summed over the tree (a process's figures
// already total its threads).
function cpuTicks(pids) {
	let sum = 0;
	for (const p of pidTree(pids)) {
		try {
			const f = fs.readFileSync(`/proc/${p}/stat`, 'latin1');
			const rest = f.slice(f.lastIndexOf(') ') + 2).split(' ');
			sum += Number(rest[11]) + Number(rest[12]);
		} catch {
			// gone: counted as zero, and the caller checks liveness
		}
	}
	return sum;
}

function rssBytes(pids) {
	let sum = 0;
	for (const p of pidTree(pids)) {
		try {
			const m = /^VmRSS:\s+([0-9]+) kB/m.exec(fs.readFileSync(`/proc/${p}/status`, 'latin1'));
			if (m)
				sum += Number(m[1]) * 1024;
		} catch {
			// gone
		}
	}
	return sum;
}

// [total, steal, busy] ticks of the whole machine, as lib.sh's machine_ticks.
function machineTicks() {
	const f = fs.readFileSync('/proc/stat', 'latin1');
	const v = f.slice(0, f.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
	let total = 0;
	for (let i = 0; i < 8; i++)
		total += v[i] || 0;
	return [total, v[7] || 0, v[0] + v[1] + v[2]];
}

function selfTicks() {
	return cpuTicks([String(process.pid)]);
}

function snapshot(targetPids, backendPids) {
	return {
		target: cpuTicks(targetPids),
		backend: cpuTicks(backendPids),
		self: selfTicks(),
		machine: machineTicks(),
		usage: process.cpuUsage(),
	};
}

// --- echo clients ----------------------------------------------------------

// A growable array of latencies in milliseconds.
class Samples {
	constructor() {
		this.a = new Float64Array(1 << 16);
		this.n = 0;
	}
	push(v) {
		if (this.n === this.a.length) {
			const b = new Float64Array(this.a.length * 2);
			b.set(this.a);
			this.a = b;
		}
		this.a[this.n++] = v;
	}
	values() {
		return this.a.slice(0, this.n);
	}
}

// Runs `conns` ping-pong connections in the current thread. `flag[0]` is 1
// while the window is open: only round trips completed then are counted.
function echoClients(port, conns, size, flag) {
	const payload = crypto.randomBytes(size);
	const frame = clientFrame(0x2, payload);
	const expect = serverFrame(0x2, payload);
	const samples = new Samples();
	let socks = [];
	let running = false;
	let count = 0;
	let bad = 0;
	let lost = 0;

	function attach(sock) {
		let parts = null;
		let have = 0;
		let sent = 0;
		sock.onBytes = (buf, n) => {
			if (!running)
				return;
			let ok;
			if (have === 0 && n === expect.length) {
				ok = expect.compare(buf, 0, n) === 0;
			} else {
				// Split (or, wrongly, merged) echo: gather it first.
				const chunk = Buffer.from(buf.subarray(0, n));
				parts = parts ? Buffer.concat([parts, chunk]) : chunk;
				have = parts.length;
				if (have < expect.length)
					return;
				ok = parts.equals(expect);
				parts = null;
				have = 0;
			}
			const now = performance.now();
			if (!ok) {
				bad++;
				sock.destroy();
				return;
			}
			if (flag[0] === 1) {
				count++;
				samples.push(now - sent);
			}
			sent = now;
			sock.write(frame);
		};
		sock.on('close', () => {
			if (running)
				lost++;
		});
		sock.start = () => {
			sent = performance.now();
			sock.write(frame);
		};
	}

	return {
		async open() {
			socks = await openMany(port, conns, 50);
			for (const s of socks)
				attach(s);
		},
		go() {
			running = true;
			for (const s of socks)
				s.start();
		},
		async stop() {
			running = false;
			await closeAll(socks);
			return { count, bad, lost, latencies: samples.values() };
		},
	};
}

function workerMain() {
	const { port, conns, size, flagBuffer } = workerData;
	const c = echoClients(port, conns, size, new Int32Array(flagBuffer));
	parentPort.on('message', async (m) => {
		if (m === 'go') {
			c.go();
		} else if (m === 'stop') {
			const r = await c.stop();
			parentPort.postMessage({ type: 'result', ...r }, [r.latencies.buffer]);
			parentPort.close();
		}
	});
	c.open().then(() => parentPort.postMessage({ type: 'ready' }),
		(e) => parentPort.postMessage({ type: 'error', message: e.message }));
}

// The same interface as echoClients, run in a worker thread.
function echoWorker(port, conns, size, flagBuffer) {
	const w = new Worker(new URL(import.meta.url), { workerData: { port, conns, size, flagBuffer } });
	let onReady, onResult;
	const ready = new Promise((res, rej) => { onReady = { res, rej }; });
	const result = new Promise((res, rej) => { onResult = { res, rej }; });
	w.on('message', (m) => {
		if (m.type === 'ready')
			onReady.res();
		else if (m.type === 'error')
			onReady.rej(new Error(m.message));
		else if (m.type === 'result')
			onResult.res(m);
	});
	w.on('error', (e) => {
		onReady.rej(e);
		onResult.rej(e);
	});
	return {
		open: () => ready,
		go: () => w.postMessage('go'),
		stop() {
			w.postMessage('stop');
			return result;
		},
	};
}

function withTimeout(promise, ms, what) {
	let timer;
	return Promise.race([
		promise.finally(() => clearTimeout(timer)),
		new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms); }),
	]);
}

const sleep = (s) => new Promise((res) => setTimeout(res, s * 1000));

function percentile(sorted, p) {
	if (sorted.length === 0)
		return null;
	return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)];
}

async function echoMain(opts) {
	const port = intOpt(opts, 'port', 0);
	const conns = intOpt(opts, 'conns', 200);
	const size = intOpt(opts, 'size', 64);
	const warmup = intOpt(opts, 'warmup', 2);
	const duration = intOpt(opts, 'duration', 10);
	const threads = Math.max(1, intOpt(opts, 'threads', 1));
	const pids = pidList(opts.pids);
	const bpids = pidList(opts['backend-pids']);
	if (!port || conns < threads || duration <= 0)
		die('echo needs --port, --duration > 0 and at least one connection per thread', 2);

	const flag = new Int32Array(new SharedArrayBuffer(4));
	const groups = [];
	for (let i = 0; i < threads; i++) {
		const n = Math.floor(conns / threads) + (i < conns % threads ? 1 : 0);
		groups.push(threads === 1 ? echoClients(port, n, size, flag) : echoWorker(port, n, size, flag.buffer));
	}
	const t0 = performance.now();
	await withTimeout(Promise.all(groups.map((g) => g.open())), 60000, 'opening the connections');
	const setup = (performance.now() - t0) / 1000;
	for (const g of groups)
		g.go();
	await sleep(warmup);

	const s0 = snapshot(pids, bpids);
	const w0 = performance.now();
	Atomics.store(flag, 0, 1);
	await sleep(duration);
	Atomics.store(flag, 0, 0);
	const w1 = performance.now();
	const s1 = snapshot(pids, bpids);

	const results = await withTimeout(Promise.all(groups.map((g) => g.stop())), CLOSE_TIMEOUT_MS + 5000, 'closing');
	let count = 0, bad = 0, lost = 0, n = 0;
	for (const r of results) {
		count += r.count;
		bad += r.bad;
		lost += r.lost;
		n += r.latencies.length;
	}
	const lat = new Float64Array(n);
	let off = 0;
	for (const r of results) {
		lat.set(r.latencies, off);
		off += r.latencies.length;
	}
	lat.sort();
	const window = (w1 - w0) / 1000;
	const usage = (s1.usage.user - s0.usage.user) + (s1.usage.system - s0.usage.system);
	const out = {
		mode: 'echo',
		conns, size, threads, setup_s: setup, window_s: window,
		round_trips: count,
		rtps: count / window,
		p50_ms: percentile(lat, 50),
		p99_ms: percentile(lat, 99),
		max_ms: lat.length ? lat[lat.length - 1] : null,
		bad_echoes: bad,
		lost_conns: lost,
		target_ticks: s1.target - s0.target,
		backend_ticks: s1.backend - s0.backend,
		client_ticks: s1.self - s0.self,
		client_cpu_pct: usage / 1e4 / window,
		machine_ticks: s1.machine.map((v, i) => v - s0.machine[i]),
	};
	process.stdout.write(JSON.stringify(out) + '\n');
}

// --- idle ------------------------------------------------------------------

async function echoOnce(port, size) {
	const payload = crypto.randomBytes(size);
	const expect = serverFrame(0x2, payload);
	const sock = await openWs(port);
	await new Promise((res, rej) => {
		let got = Buffer.alloc(0);
		const timer = setTimeout(() => rej(new Error('no echo within 5 s')), 5000);
		sock.on('error', (e) => { clearTimeout(timer); rej(e); });
		sock.on('close', () => { clearTimeout(timer); rej(new Error('connection closed before the echo')); });
		sock.onBytes = (buf, n) => {
			got = Buffer.concat([got, buf.subarray(0, n)]);
			if (got.length < expect.length)
				return;
			clearTimeout(timer);
			if (got.equals(expect))
				res();
			else
				rej(new Error('the echo differs from the message sent'));
		};
		sock.write(clientFrame(0x2, payload));
	});
	await closeAll([sock]);
}

async function idleMain(opts) {
	const port = intOpt(opts, 'port', 0);
	const conns = intOpt(opts, 'conns', 5000);
	const concurrency = Math.max(1, intOpt(opts, 'concurrency', 100));
	const settle = intOpt(opts, 'settle', 2);
	const pids = pidList(opts.pids);
	const bpids = pidList(opts['backend-pids']);
	if (!port || conns < 1)
		die('idle needs --port and --conns >= 1', 2);

	// One tunnel first, so that memory a proxy sets up lazily on its first
	// tunnel (and keeps) is not charged to the idle ones.
	await echoOnce(port, 64);
	await sleep(0.5);
	const rss0 = rssBytes(pids);
	const brss0 = rssBytes(bpids);
	const t0 = performance.now();
	let socks;
	try {
		socks = await openMany(port, conns, concurrency);
	} catch (e) {
		die(`opening ${conns} WebSockets failed: ${e.message}`);
	}
	const open = (performance.now() - t0) / 1000;
	let early = 0;
	for (const s of socks)
		s.once('close', () => early++);
	await sleep(settle);
	const rss1 = rssBytes(pids);
	const brss1 = rssBytes(bpids);
	if (early > 0)
		die(`${early} of ${conns} idle WebSockets were closed while idle`);
	await closeAll(socks);
	process.stdout.write(JSON.stringify({
		mode: 'idle', conns, concurrency, settle_s: settle, open_s: open,
		rss_before: rss0, rss_after: rss1, rss_per_tunnel: (rss1 - rss0) / conns,
		backend_rss_before: brss0, backend_rss_after: brss1,
		backend_rss_per_conn: bpids.length ? (brss1 - brss0) / conns : null,
	}) + '\n');
}

async function main() {
	const opts = parseArgs(process.argv.slice(2));
	switch (opts.mode) {
	case 'echo':
		await echoMain(opts);
		break;
	case 'idle':
		await idleMain(opts);
		break;
	case 'check': {
		const port = intOpt(opts, 'port', 0);
		if (!port)
			die('check needs --port', 2);
		await echoOnce(port, intOpt(opts, 'size', 64));
		break;
	}
	default:
		die('usage: node ws-load.mjs echo|idle|check --port PORT [options] (see the head of this file)', 2);
	}
}

if (isMainThread) {
	main().then(() => process.exit(0), (e) => die(e.message));
} else {
	workerMain();
}
