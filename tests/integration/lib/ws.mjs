// WebSocket peers for the tunnel tests: an RFC 6455 frame encoder and
// parser for raw conversations (frames the ws package will not send), a
// raw upgrade client, a raw upgrading server, and a ws-package backend that
// records what reaches it. Does not start sluice (see sluice.mjs).

import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { dep } from './deps.mjs';
import { RawConn, parseResponses } from './client.mjs';
import { listenTracked, readHead } from './backend.mjs';
import { SLOW } from './sluice.mjs';

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A fresh Sec-WebSocket-Key: base64 of 16 random bytes. */
export function wsKey() {
	return crypto.randomBytes(16).toString('base64');
}

/** The Sec-WebSocket-Accept a server derives from key. */
export function wsAccept(key) {
	return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

/** Payload of a close frame: 2-byte code and a UTF-8 reason. */
export function closePayload(code, reason = '') {
	const r = Buffer.from(reason, 'utf8');
	const b = Buffer.alloc(2 + r.length);
	b.writeUInt16BE(code, 0);
	r.copy(b, 2);
	return b;
}

/**
 * One frame. mask: true (random key), a 4-byte Buffer, or false (unmasked).
 * rsv: the three RSV bits as a number 0..7. payload: Buffer or string.
 */
export function encodeFrame({ fin = true, rsv = 0, opcode, payload = Buffer.alloc(0), mask = false }) {
	const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
	const len = data.length;
	let hlen = 2;
	if (len >= 65536) hlen += 8;
	else if (len >= 126) hlen += 2;
	const key = mask === true ? crypto.randomBytes(4) : mask || null;
	if (key) hlen += 4;
	const out = Buffer.alloc(hlen + len);
	out[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
	let off = 2;
	if (len >= 65536) {
		out[1] = 127;
		out.writeBigUInt64BE(BigInt(len), 2);
		off += 8;
	} else if (len >= 126) {
		out[1] = 126;
		out.writeUInt16BE(len, 2);
		off += 2;
	} else {
		out[1] = len;
	}
	if (key) {
		out[1] |= 0x80;
		key.copy(out, off);
		off += 4;
		for (let i = 0; i < len; i++) out[off + i] = data[i] ^ key[i & 3];
	} else {
		data.copy(out, off);
	}
	return out;
}

/**
 * Parse the complete frames at the start of buf. Returns {frames, used}:
 * each frame {fin, rsv, opcode, masked, payload (unmasked), length (whole
 * frame bytes), code and reason for a close frame}; used = bytes consumed.
 */
export function parseFrames(buf) {
	const frames = [];
	let off = 0;
	for (;;) {
		if (buf.length - off < 2) break;
		const b0 = buf[off];
		const b1 = buf[off + 1];
		let len = b1 & 0x7f;
		let p = off + 2;
		if (len === 126) {
			if (buf.length - p < 2) break;
			len = buf.readUInt16BE(p);
			p += 2;
		} else if (len === 127) {
			if (buf.length - p < 8) break;
			len = Number(buf.readBigUInt64BE(p));
			p += 8;
		}
		const masked = (b1 & 0x80) !== 0;
		let key = null;
		if (masked) {
			if (buf.length - p < 4) break;
			key = buf.subarray(p, p + 4);
			p += 4;
		}
		if (buf.length - p < len) break;
		let payload = buf.subarray(p, p + len);
		if (key) {
			payload = Buffer.from(payload);
			for (let i = 0; i < len; i++) payload[i] ^= key[i & 3];
		}
		const f = {
			fin: (b0 & 0x80) !== 0,
			rsv: (b0 >> 4) & 7,
			opcode: b0 & 0x0f,
			masked,
			payload,
			length: p + len - off,
		};
		if (f.opcode === OP.CLOSE) {
			f.code = len >= 2 ? payload.readUInt16BE(0) : null;
			f.reason = len > 2 ? payload.toString('utf8', 2) : '';
		}
		frames.push(f);
		off = p + len;
	}
	return { frames, used: off };
}

/**
 * Wait until the frames a RawConn received after byte offset from satisfy
 * pred(frames); resolves the frames. Rejects on timeout, or when the
 * connection closes first.
 */
export async function waitFrames(conn, from, pred, timeout = 5000) {
	let frames;
	await conn.waitFor((buf) => {
		frames = parseFrames(buf.subarray(from)).frames;
		return pred(frames);
	}, timeout);
	return frames;
}

/** The frames received so far after byte offset from. */
export function framesOf(conn, from) {
	return parseFrames(conn.buf.subarray(from)).frames;
}

/** Headers of a good upgrade request, as [name, value] pairs. */
export function upgradeHeaders(key = wsKey(), extra = []) {
	return [
		['Host', 'ws.test'],
		['Upgrade', 'websocket'],
		['Connection', 'Upgrade'],
		['Sec-WebSocket-Key', key],
		['Sec-WebSocket-Version', '13'],
		...extra,
	];
}

/** Request head text from a request line and [name, value] pairs. */
export function requestHead(line, headers) {
	return `${line}\r\n${headers.map(([n, v]) => `${n}: ${v}`).join('\r\n')}\r\n\r\n`;
}

/**
 * Open a raw connection to port and send an upgrade request (GET path
 * HTTP/1.1 with upgradeHeaders(key, extra), or head as given). Resolves
 * {conn, key, request (bytes sent), response (parsed head), headLength}
 * once a whole response head arrived (101 or not); frames follow at
 * conn.buf offset headLength. halfOpen: the connection survives a FIN.
 */
export async function rawUpgrade(port, { path = '/ws', key = wsKey(), extra = [], head, timeout = 5000, halfOpen = false } = {}) {
	const conn = halfOpen ? await openHalfOpen(port) : await RawConn.open(port);
	const request = Buffer.from(head ?? requestHead(`GET ${path} HTTP/1.1`, upgradeHeaders(key, extra)), 'latin1');
	await conn.write(request);
	await conn.waitFor((b) => b.indexOf('\r\n\r\n') >= 0, timeout);
	const headLength = conn.buf.indexOf('\r\n\r\n') + 4;
	const response = parseResponses(conn.buf.subarray(0, headLength))[0];
	return { conn, key, request, response, headLength };
}

/**
 * A raw server that answers every upgrade request with a correct 101 (or
 * with opts.respond(head) -> string when given), then hands the socket to
 * handler(sock, head, index) with any bytes after the head unshifted and
 * the socket paused. Sockets are half-open capable: a FIN from sluice does
 * not end the server's side. Records request heads in .requests.
 */
export async function startRawWsServer(handler, { t, name = 'rawws', respond } = {}) {
	const sockets = new Set();
	const r = { name, port: 0, address: '', connections: 0, requests: [] };
	const server = net.createServer({ allowHalfOpen: true }, async (sock) => {
		const idx = r.connections++;
		sockets.add(sock);
		sock.on('close', () => sockets.delete(sock));
		sock.on('error', () => {});
		try {
			const head = await readHead(sock);
			r.requests.push(head);
			const answer = respond ? respond(head) : 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
				`Sec-WebSocket-Accept: ${wsAccept(head.headers['sec-websocket-key'] || '')}\r\n\r\n`;
			sock.write(answer);
			await handler(sock, head, idx);
		} catch {
			sock.destroy();
		}
	});
	return listenTracked(server, sockets, r, t);
}

/** A raw client connection that keeps its write side open after a FIN. */
export function openHalfOpen(port, { host = '127.0.0.1', timeout = 5000 } = {}) {
	return new Promise((resolve, reject) => {
		const sock = net.connect({ host, port, allowHalfOpen: true });
		const timer = setTimeout(() => { sock.destroy(); reject(new Error('connect timeout')); }, timeout);
		sock.once('connect', () => { clearTimeout(timer); resolve(new RawConn(sock)); });
		sock.once('error', (e) => { clearTimeout(timer); reject(e); });
	});
}

/** Collects bytes a socket receives, with waits. */
export class Collector {
	constructor(sock) {
		this.sock = sock;
		this.chunks = [];
		this.length = 0;
		this.ended = false;
		this.closed = false;
		this.waiters = new Set();
		sock.on('data', (d) => { this.chunks.push(d); this.length += d.length; this.notify(); });
		sock.on('end', () => { this.ended = true; this.notify(); });
		sock.on('close', () => { this.closed = true; this.notify(); });
		sock.resume();
	}

	get buf() {
		if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
		return this.chunks[0] || Buffer.alloc(0);
	}

	notify() {
		for (const w of [...this.waiters]) w();
	}

	/** Wait until pred(this) holds; rejects after timeout ms. */
	until(pred, timeout = 5000, what = 'condition') {
		return new Promise((resolve, reject) => {
			const check = () => {
				if (pred(this)) { done(); resolve(this); }
			};
			const timer = setTimeout(() => { done(); reject(new Error(`${what} not met within ${timeout * SLOW} ms (got ${this.length} bytes, ended ${this.ended}, closed ${this.closed})`)); }, timeout * SLOW);
			const done = () => { clearTimeout(timer); this.waiters.delete(check); };
			this.waiters.add(check);
			check();
		});
	}

	frames() {
		return parseFrames(this.buf).frames;
	}
}

/* ---------- the ws package as client and server ---------- */

const wsPkg = () => dep('ws');

/**
 * A backend speaking WebSocket through the ws package on 127.0.0.1. Each
 * connection is handed to opts.onConnection(ws, req, backend); by default
 * it echoes every message (text stays text, binary stays binary). Plain
 * HTTP requests get 200 "plain\n". Records .upgrades (request heads that
 * asked to upgrade), .requests (plain requests), .conns (server-side ws
 * objects with .received messages and .closeInfo), .httpSockets.
 * opts.wsOptions go to WebSocketServer (e.g. verifyClient, maxPayload).
 */
export async function startWsBackend(opts = {}) {
	const { WebSocketServer } = wsPkg();
	const name = opts.name || 'ws';
	const b = { name, upgrades: [], requests: [], conns: [], port: 0, address: '' };
	const sockets = new Set();
	const server = http.createServer((req, res) => {
		b.requests.push({ method: req.method, url: req.url, headers: req.headers, httpVersion: req.httpVersion });
		req.resume();
		req.on('end', () => {
			res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 6 });
			res.end('plain\n');
		});
	});
	server.on('connection', (s) => {
		sockets.add(s);
		s.on('close', () => sockets.delete(s));
		s.on('error', () => {});
	});
	const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 * 1024, ...(opts.wsOptions || {}) });
	server.on('upgrade', (req, sock, head) => {
		b.upgrades.push({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, httpVersion: req.httpVersion });
		wss.handleUpgrade(req, sock, head, (ws) => wss.emit('connection', ws, req));
	});
	wss.on('connection', (ws, req) => {
		ws.received = [];
		ws.pings = [];
		ws.pongs = [];
		ws.closeInfo = null;
		ws.closed = new Promise((resolve) => ws.once('close', (code, reason) => {
			ws.closeInfo = { code, reason: reason.toString() };
			resolve(ws.closeInfo);
		}));
		ws.on('error', () => {});
		ws.on('ping', (d) => ws.pings.push(Buffer.from(d)));
		ws.on('pong', (d) => ws.pongs.push(Buffer.from(d)));
		b.conns.push(ws);
		if (opts.onConnection) return opts.onConnection(ws, req, b);
		ws.on('message', (data, isBinary) => {
			ws.received.push({ data, isBinary });
			ws.send(data, { binary: isBinary });
		});
	});
	await new Promise((resolve, reject) => {
		server.once('error', reject);
		server.listen(0, '127.0.0.1', resolve);
	});
	b.server = server;
	b.wss = wss;
	b.port = server.address().port;
	b.address = `127.0.0.1:${b.port}`;
	/** Resolves the n-th (0-based) server-side connection once it exists. */
	b.conn = async (n = 0, timeout = 5000) => {
		const end = Date.now() + timeout * SLOW;
		while (!b.conns[n]) {
			if (Date.now() > end) throw new Error(`no server-side WebSocket #${n} within ${timeout} ms`);
			await new Promise((r) => setTimeout(r, 10));
		}
		return b.conns[n];
	};
	b.close = async () => {
		for (const ws of wss.clients) ws.terminate();
		for (const s of sockets) s.destroy();
		wss.close();
		await new Promise((r) => server.close(() => r()));
	};
	if (opts.t) opts.t.after(() => b.close());
	return b;
}

/**
 * A ws-package client with its inbox. Resolves the WebSocket once open
 * (rejects on error, a non-101 answer (err.statusCode) or timeout), with
 * ws.inbox (messages {data, isBinary}; not kept with keepInbox: false),
 * ws.next(timeout) for the next message, ws.closed (promise of {code,
 * reason}), ws.pongs, ws.pings. protocols: Sec-WebSocket-Protocol list;
 * other options go to the ws WebSocket.
 */
export function openWs(url, { timeout = 5000, t, protocols, keepInbox = true, ...wsOpts } = {}) {
	const { WebSocket } = wsPkg();
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(url, protocols, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024, ...wsOpts });
		if (t) t.after(() => ws.terminate());
		ws.inbox = [];
		ws.pongs = [];
		ws.pings = [];
		ws.closeInfo = null;
		const waiters = new Set();
		const notify = () => { for (const w of [...waiters]) w(); };
		if (keepInbox) ws.on('message', (data, isBinary) => { ws.inbox.push({ data, isBinary }); notify(); });
		ws.on('ping', (d) => ws.pings.push(Buffer.from(d)));
		ws.on('pong', (d) => { ws.pongs.push(Buffer.from(d)); notify(); });
		ws.closed = new Promise((r) => ws.once('close', (code, reason) => {
			ws.closeInfo = { code, reason: reason.toString() };
			notify();
			r(ws.closeInfo);
		}));
		ws.errors = [];
		ws.on('error', (e) => ws.errors.push(e));
		let taken = 0;
		ws.next = (ms = 5000) => new Promise((res, rej) => {
			const check = () => {
				if (ws.inbox.length > taken) { done(); res(ws.inbox[taken++]); return; }
				if (ws.closeInfo) { done(); rej(new Error(`closed (${ws.closeInfo.code} ${ws.closeInfo.reason}) while waiting for a message`)); }
			};
			const timer = setTimeout(() => { done(); rej(new Error(`no message within ${ms * SLOW} ms`)); }, ms * SLOW);
			const done = () => { clearTimeout(timer); waiters.delete(check); };
			waiters.add(check);
			check();
		});
		ws.waitPong = (ms = 5000) => new Promise((res, rej) => {
			const check = () => { if (ws.pongs.length) { done(); res(ws.pongs[0]); } };
			const timer = setTimeout(() => { done(); rej(new Error('no pong')); }, ms * SLOW);
			const done = () => { clearTimeout(timer); waiters.delete(check); };
			waiters.add(check);
			check();
		});
		const timer = setTimeout(() => { ws.terminate(); reject(new Error(`WebSocket ${url} did not open within ${timeout * SLOW} ms`)); }, timeout * SLOW);
		ws.once('open', () => { clearTimeout(timer); resolve(ws); });
		ws.once('unexpected-response', (req, res) => {
			clearTimeout(timer);
			let body = '';
			res.on('data', (d) => { body += d; });
			res.on('end', () => {
				const e = new Error(`unexpected response ${res.statusCode}`);
				e.statusCode = res.statusCode;
				e.headers = res.headers;
				e.body = body;
				reject(e);
				ws.terminate();
			});
			res.on('error', () => {});
		});
		ws.once('error', (e) => { clearTimeout(timer); reject(e); });
	});
}

/** Resolve a promise or reject after ms (times SLOW). */
export function within(promise, ms, what = 'operation') {
	let timer;
	return Promise.race([
		promise,
		new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms * SLOW} ms`)), ms * SLOW); }),
	]).finally(() => clearTimeout(timer));
}
