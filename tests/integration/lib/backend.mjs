// Peers that sluice forwards to: a Node http backend with routes chosen by
// path that records every request it receives, a raw TCP server for
// misbehaving peers, a connect black hole, and the deterministic byte
// pattern used for large bodies. Does not start sluice (see sluice.mjs).

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { trackProcess, sleep } from './sluice.mjs';

/* ---------- deterministic byte pattern: byte i = i % 251 ---------- */

const PERIOD = 251;
export const PATTERN_CHUNK = PERIOD * 256; // 64256 bytes per write
const PATTERN = Buffer.alloc(PERIOD * 4096 + PERIOD);
for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = i % PERIOD;

/** Bytes [pos, pos + len) of the pattern, len <= PERIOD * 4096 (a view, never modify). */
export function patternSlice(pos, len) {
	const off = pos % PERIOD;
	return PATTERN.subarray(off, off + len);
}

/** A Readable producing n pattern bytes without holding them in memory. */
export function patternStream(n, chunk = PATTERN_CHUNK) {
	let pos = 0;
	return new Readable({
		read() {
			if (pos >= n) {
				this.push(null);
				return;
			}
			const len = Math.min(chunk, n - pos);
			const b = patternSlice(pos, len);
			pos += len;
			this.push(b);
		},
	});
}

const shaCache = new Map();
/** sha256 hex of the first n pattern bytes. */
export function patternSha(n) {
	if (shaCache.has(n)) return shaCache.get(n);
	const h = crypto.createHash('sha256');
	const big = PERIOD * 4096;
	for (let pos = 0; pos < n; pos += big) h.update(patternSlice(pos, Math.min(big, n - pos)));
	const d = h.digest('hex');
	shaCache.set(n, d);
	return d;
}

export function sha256(buf) {
	return crypto.createHash('sha256').update(buf).digest('hex');
}

/** Write n pattern bytes to a writable honouring backpressure, then end it. */
function streamPattern(w, n, onEnd) {
	let pos = 0;
	let stopped = false;
	w.once('close', () => { stopped = true; });
	const pump = () => {
		while (!stopped && pos < n) {
			const len = Math.min(PATTERN_CHUNK, n - pos);
			const ok = w.write(patternSlice(pos, len));
			pos += len;
			if (!ok) {
				w.once('drain', pump);
				return;
			}
		}
		if (!stopped) (onEnd || (() => w.end()))();
	};
	pump();
}

/* ---------- Node http backend ---------- */

export const CHUNKED_PARTS = ['alpha-', 'bravo-', 'charlie-', 'delta'];
export const CHUNKED_BODY = CHUNKED_PARTS.join('');

function consumeBody(req, rec) {
	return new Promise((resolve) => {
		const h = crypto.createHash('sha256');
		const chunks = [];
		let len = 0;
		req.on('data', (d) => {
			h.update(d);
			len += d.length;
			if (len <= 65536) chunks.push(d);
		});
		req.on('end', () => {
			rec.bodyLength = len;
			rec.sha256 = h.digest('hex');
			rec.trailers = { ...req.trailers };
			rec.body = len <= 65536 ? Buffer.concat(chunks) : null;
			rec.complete = true;
			resolve(true);
		});
		req.on('aborted', () => { rec.aborted = true; resolve(false); });
		req.on('error', () => { rec.aborted = true; resolve(false); });
	});
}

function echoPayload(name, req, rec) {
	return {
		backend: name,
		method: req.method,
		url: req.url,
		httpVersion: req.httpVersion,
		headers: req.headers,
		rawHeaders: req.rawHeaders,
		trailers: rec.trailers,
		bodyLength: rec.bodyLength,
		sha256: rec.sha256,
		body: rec.body && rec.bodyLength <= 4096 ? rec.body.toString('latin1') : null,
		remotePort: req.socket.remotePort,
		n: rec.n,
	};
}

function sendJson(res, status, obj, extraHeaders = {}) {
	const body = Buffer.from(JSON.stringify(obj));
	res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length, ...extraHeaders });
	res.end(body);
}

/**
 * Start an HTTP backend on 127.0.0.1. opts: name, keepAliveTimeout (ms),
 * idleCloseMs (close an idle connection that long after a response),
 * routes: {'/path': (req, res, rec, backend) => ...} tried first (exact path).
 * Built-in routes (by path; any other path echoes):
 *   /echo                 JSON: method, url, headers, rawHeaders, trailers, body sha256/length, remotePort
 *   /status/NNN           that status, short body
 *   /delay/MS             echo JSON after MS ms
 *   /chunked              chunked body CHUNKED_BODY in several writes, trailer X-Checksum
 *   /bytes/N              N pattern bytes with Content-Length
 *   /bytes-chunked/N      N pattern bytes, chunked
 *   /close-delimited/N    N pattern bytes, no framing, ended by close (raw socket)
 *   /truncate/N           Content-Length 10*N, sends N bytes then drops the connection
 *   /stall/N              Content-Length 10*N, sends N bytes then nothing
 *   /upload               consumes the body, JSON sha256 + length
 *   /early-hints          103 with a Link header, then 200 JSON
 *   /hang                 never answers
 * Records every request at head arrival in .requests.
 */
export async function startBackend(opts = {}) {
	const name = opts.name || 'backend';
	const routes = opts.routes || {};
	const requests = [];
	const sockets = new Set();
	const remotePortsByConn = [];
	const b = {
		name,
		requests,
		connections: 0,
		closedConnections: 0,
		remotePortsByConn,
		port: 0,
		address: '',
		server: null,
		/** Requests whose path starts with p. */
		requestsTo(p) {
			return requests.filter((r) => r.path.startsWith(p));
		},
		async close() {
			b.server.closeAllConnections?.();
			for (const s of sockets) s.destroy();
			await new Promise((r) => b.server.close(() => r()));
		},
	};
	const server = http.createServer(async (req, res) => {
		const u = new URL(req.url, 'http://x');
		const rec = {
			n: requests.length + 1,
			method: req.method,
			url: req.url,
			path: u.pathname,
			httpVersion: req.httpVersion,
			headers: req.headers,
			rawHeaders: req.rawHeaders,
			remotePort: req.socket.remotePort,
			bodyLength: null,
			sha256: null,
			trailers: null,
			aborted: false,
			complete: false,
			time: Date.now(),
		};
		requests.push(rec);
		// idleCloseMs: close the connection that long after a response when
		// no new request came (Node's own keepAliveTimeout adds a second).
		if (opts.idleCloseMs !== undefined) {
			const sock = req.socket;
			clearTimeout(sock.idleCloseTimer);
			res.on('finish', () => {
				sock.idleCloseTimer = setTimeout(() => sock.destroy(), opts.idleCloseMs);
			});
		}
		res.on('error', () => {});
		req.socket.on('error', () => {});
		const p = u.pathname;
		let m;
		try {
			if (routes[p]) return await routes[p](req, res, rec, b);
			if ((m = /^\/status\/(\d{3})$/.exec(p))) {
				await consumeBody(req, rec);
				const code = Number(m[1]);
				res.writeHead(code, { 'Content-Type': 'text/plain', 'X-Backend': name });
				return res.end(`status ${code}\n`);
			}
			if ((m = /^\/delay\/(\d+)$/.exec(p))) {
				await consumeBody(req, rec);
				await sleep(Number(m[1]));
				return sendJson(res, 200, echoPayload(name, req, rec), { 'X-Backend': name });
			}
			if (p === '/chunked') {
				await consumeBody(req, rec);
				// Node refuses trailers (and the Trailer field) on an HTTP/1.0
				// request, which gets a close-delimited body instead.
				const v11 = req.httpVersion === '1.1';
				res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Backend': name, ...(v11 ? { Trailer: 'X-Checksum' } : {}) });
				for (const part of CHUNKED_PARTS) {
					res.write(part);
					await sleep(10);
				}
				if (v11) res.addTrailers({ 'X-Checksum': sha256(CHUNKED_BODY) });
				return res.end();
			}
			if ((m = /^\/bytes\/(\d+)$/.exec(p))) {
				await consumeBody(req, rec);
				const n = Number(m[1]);
				res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': n, 'X-Backend': name });
				if (req.method === 'HEAD') return res.end();
				return streamPattern(res, n);
			}
			if ((m = /^\/bytes-chunked\/(\d+)$/.exec(p))) {
				await consumeBody(req, rec);
				res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'X-Backend': name });
				if (req.method === 'HEAD') return res.end();
				return streamPattern(res, Number(m[1]));
			}
			if ((m = /^\/close-delimited(?:\/(\d+))?$/.exec(p))) {
				await consumeBody(req, rec);
				// Take the socket over: an HTTP/1.0-style body whose end is
				// the close, which Node's ServerResponse never produces.
				const sock = req.socket;
				const n = Number(m[1] ?? 10000);
				sock.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n');
				return streamPattern(sock, n, () => sock.end());
			}
			if ((m = /^\/truncate\/(\d+)$/.exec(p))) {
				await consumeBody(req, rec);
				const n = Number(m[1]);
				res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': n * 10 });
				res.write(patternSlice(0, n), () => setTimeout(() => req.socket.destroy(), 50));
				return;
			}
			if ((m = /^\/stall\/(\d+)$/.exec(p))) {
				await consumeBody(req, rec);
				const n = Number(m[1]);
				res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': n * 10 });
				res.write(patternSlice(0, n));
				return; // and nothing more until close()
			}
			if (p === '/upload') {
				await consumeBody(req, rec);
				return sendJson(res, 200, { backend: name, bodyLength: rec.bodyLength, sha256: rec.sha256, trailers: rec.trailers });
			}
			if (p === '/early-hints') {
				await consumeBody(req, rec);
				res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
				await sleep(50);
				return sendJson(res, 200, echoPayload(name, req, rec), { 'X-Backend': name });
			}
			if (p === '/hang') {
				return; // the socket is destroyed by close()
			}
			await consumeBody(req, rec);
			return sendJson(res, 200, echoPayload(name, req, rec), { 'X-Backend': name });
		} catch (e) {
			if (!res.headersSent) sendJson(res, 500, { error: String(e) });
			else res.destroy();
		}
	});
	server.keepAliveTimeout = opts.keepAliveTimeout ?? 5000;
	server.on('connection', (sock) => {
		b.connections++;
		remotePortsByConn.push(sock.remotePort);
		sockets.add(sock);
		sock.on('close', () => {
			sockets.delete(sock);
			b.closedConnections++;
		});
		sock.on('error', () => {});
	});
	server.on('clientError', (err, sock) => {
		b.clientErrors = (b.clientErrors || 0) + 1;
		if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
		else sock.destroy();
	});
	await new Promise((resolve, reject) => {
		server.once('error', reject);
		server.listen(0, '127.0.0.1', resolve);
	});
	b.server = server;
	b.port = server.address().port;
	b.address = `127.0.0.1:${b.port}`;
	if (opts.t) opts.t.after(() => b.close());
	return b;
}

/* ---------- raw TCP peers ---------- */

/*
 * Listen on a free 127.0.0.1 port and fill r with server, port, address and
 * close() (which destroys the tracked sockets); closed by t's teardown.
 * Shared by the raw peers here and in ws.mjs.
 */
export async function listenTracked(server, sockets, r, t) {
	await new Promise((resolve, reject) => {
		server.once('error', reject);
		server.listen(0, '127.0.0.1', resolve);
	});
	r.server = server;
	r.port = server.address().port;
	r.address = `127.0.0.1:${r.port}`;
	r.close = async () => {
		for (const s of sockets) s.destroy();
		await new Promise((res) => server.close(() => res()));
	};
	if (t) t.after(() => r.close());
	return r;
}


/**
 * Start a raw TCP server on 127.0.0.1; handler(socket, index) is called for
 * each connection. Returns {port, address, connections, close}.
 */
export async function startRawServer(handler, { t, name = 'raw' } = {}) {
	const sockets = new Set();
	const r = { name, port: 0, address: '', connections: 0, requests: [] };
	const server = net.createServer((sock) => {
		const idx = r.connections++;
		sockets.add(sock);
		sock.on('close', () => sockets.delete(sock));
		sock.on('error', () => {});
		Promise.resolve(handler(sock, idx, r)).catch(() => sock.destroy());
	});
	return listenTracked(server, sockets, r, t);
}

/**
 * Read one request (or response) head from a socket. Resolves
 * {head, startLine, method, url, version, headers: {lc: value joined ', '},
 * headerList: [[name, value]], rest: Buffer} with the socket paused and any
 * bytes after the head unshifted back; rejects on close or timeout.
 */
export function readHead(sock, { timeout = 5000 } = {}) {
	return new Promise((resolve, reject) => {
		let buf = Buffer.alloc(0);
		const cleanup = () => {
			clearTimeout(timer);
			sock.removeListener('data', onData);
			sock.removeListener('close', onClose);
		};
		const onClose = () => { cleanup(); reject(new Error('closed before a full head')); };
		const onData = (d) => {
			buf = Buffer.concat([buf, d]);
			const end = buf.indexOf('\r\n\r\n');
			if (end < 0) return;
			cleanup();
			sock.pause();
			const rest = buf.subarray(end + 4);
			if (rest.length) sock.unshift(rest);
			const head = buf.toString('latin1', 0, end);
			const lines = head.split('\r\n');
			const [a, b2, c] = lines[0].split(' ');
			const headerList = lines.slice(1).map((l) => {
				const i = l.indexOf(':');
				return [l.slice(0, i), l.slice(i + 1).trim()];
			});
			const headers = {};
			for (const [n, v] of headerList) {
				const k = n.toLowerCase();
				headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
			}
			resolve({ head, startLine: lines[0], method: a, url: b2, version: c, headers, headerList, rest });
		};
		const timer = setTimeout(() => { cleanup(); reject(new Error('head timeout')); }, timeout);
		sock.on('data', onData);
		sock.on('close', onClose);
	});
}

/** Read exactly n body bytes after readHead (socket resumed here). */
export function readBytes(sock, n, { timeout = 5000 } = {}) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		let got = 0;
		if (n === 0) return resolve(Buffer.alloc(0));
		const cleanup = () => { clearTimeout(timer); sock.removeListener('data', onData); sock.removeListener('close', onClose); };
		const onClose = () => { cleanup(); reject(new Error(`closed after ${got} of ${n} bytes`)); };
		const onData = (d) => {
			chunks.push(d);
			got += d.length;
			if (got >= n) {
				cleanup();
				sock.pause();
				const all = Buffer.concat(chunks);
				if (all.length > n) sock.unshift(all.subarray(n));
				resolve(all.subarray(0, n));
			}
		};
		const timer = setTimeout(() => { cleanup(); reject(new Error('body timeout')); }, timeout);
		sock.on('data', onData);
		sock.on('close', onClose);
		sock.resume();
	});
}

/** A port with nothing listening: connects to it are refused. */
export { freePort as closedPort } from './sluice.mjs';

/* ---------- connect black hole ---------- */

const BLACKHOLE_PY = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('127.0.0.1', 0))
s.listen(0)
port = s.getsockname()[1]
fill = []
for i in range(3):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(('127.0.0.1', port))
    fill.append(c)
time.sleep(0.2)
print(port, flush=True)
sys.stdin.read()
`;

/**
 * A listening socket whose accept queue is full (backlog 0, never
 * accepts, filled by its own pending connects), so new SYNs are dropped and
 * connects hang. Verified before returning. python3 does the socket work
 * because Node always accepts. Returns {port, address, close}.
 */
export async function startBlackhole({ t } = {}) {
	const proc = trackProcess(spawn('python3', ['-c', BLACKHOLE_PY], { stdio: ['pipe', 'pipe', 'pipe'] }));
	let out = '';
	let err = '';
	proc.stderr.on('data', (d) => { err += d; });
	const port = await new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`blackhole did not start: ${err}`)), 5000);
		proc.stdout.on('data', (d) => {
			out += d;
			const m = /^(\d+)\n/.exec(out);
			if (m) { clearTimeout(timer); resolve(Number(m[1])); }
		});
		proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`blackhole exited ${code}: ${err}`)); });
		proc.once('error', (e) => { clearTimeout(timer); reject(e); });
	});
	const bh = {
		port,
		address: `127.0.0.1:${port}`,
		proc,
		async close() {
			if (proc.exitCode === null && proc.signalCode === null) {
				try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
				await new Promise((r) => proc.once('exit', r));
			}
		},
	};
	// Make sure a connect really hangs here.
	const hung = await new Promise((resolve) => {
		const s = net.connect({ host: '127.0.0.1', port });
		const timer = setTimeout(() => { s.destroy(); resolve(true); }, 300);
		s.once('connect', () => { clearTimeout(timer); s.destroy(); resolve(false); });
		s.once('error', () => { clearTimeout(timer); resolve(false); });
	});
	if (!hung) {
		await bh.close();
		throw new Error('blackhole does not make connects hang on this host');
	}
	if (t) t.after(() => bh.close());
	return bh;
}
