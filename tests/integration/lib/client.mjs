// Client side of the integration tests: raw TCP conversations for bytes
// that Node's http client refuses to send, a parser for the responses that
// come back (pipelined, chunked, close-delimited), and a small promise
// wrapper over node:http for well-formed exchanges.

import http from 'node:http';
import net from 'node:net';
import { SLOW } from './sluice.mjs';

/**
 * A raw client connection. Collects everything the server sends.
 *   const c = await RawConn.open(port);
 *   c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
 *   await c.waitFor(/\r\n\r\n/);
 *   await c.waitClose(2000);
 */
export class RawConn {
	static open(port, { host = '127.0.0.1', timeout = 5000 } = {}) {
		return new Promise((resolve, reject) => {
			const sock = net.connect({ host, port });
			const timer = setTimeout(() => { sock.destroy(); reject(new Error('connect timeout')); }, timeout);
			sock.once('connect', () => { clearTimeout(timer); resolve(new RawConn(sock)); });
			sock.once('error', (e) => { clearTimeout(timer); reject(e); });
		});
	}

	constructor(sock) {
		this.sock = sock;
		this.chunks = [];
		this.length = 0;
		this.closed = false;	// the server ended or reset the connection
		this.reset = false;
		this.ended = false;	// FIN received
		this.error = null;
		this.closedAt = null;
		this.waiters = new Set();
		this.localPort = sock.localPort;
		sock.on('data', (d) => {
			this.chunks.push(d);
			this.length += d.length;
			this.notify();
		});
		sock.on('end', () => { this.ended = true; this.notify(); });
		sock.on('error', (e) => {
			this.error = e;
			if (e.code === 'ECONNRESET' || e.code === 'EPIPE') this.reset = true;
			this.notify();
		});
		sock.on('close', () => {
			this.closed = true;
			this.closedAt = Date.now();
			this.notify();
		});
	}

	get buf() {
		if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
		return this.chunks[0] || Buffer.alloc(0);
	}

	get text() {
		return this.buf.toString('latin1');
	}

	notify() {
		for (const w of [...this.waiters]) w();
	}

	write(data) {
		return new Promise((resolve) => {
			if (this.sock.destroyed || !this.sock.writable) return resolve(false);
			this.sock.write(data, (err) => resolve(!err));
		});
	}

	/** Half-close our side. */
	end() {
		this.sock.end();
	}

	destroy() {
		this.sock.destroy();
	}

	/**
	 * Wait until pred(buf, text) is true, or a RegExp matches the text, or
	 * (when the connection closes first) reject. Resolves the text.
	 */
	waitFor(pred, timeout = 5000) {
		const test = pred instanceof RegExp ? (b, t) => pred.test(t) : pred;
		return new Promise((resolve, reject) => {
			const check = () => {
				const t = this.text;
				if (test(this.buf, t)) { done(); resolve(t); return; }
				if (this.closed) { done(); reject(new Error(`connection closed before condition; received:\n${t}`)); }
			};
			const timer = setTimeout(() => { done(); reject(new Error(`timeout after ${timeout} ms; received:\n${this.text}`)); }, timeout * SLOW);
			const done = () => { clearTimeout(timer); this.waiters.delete(check); };
			this.waiters.add(check);
			check();
		});
	}

	/** Wait for n complete responses (see parseResponses); resolves them. */
	async waitResponses(n, { methods, timeout = 5000 } = {}) {
		let out;
		await this.waitFor((b) => {
			out = parseResponses(b, { methods, closed: this.closed }).filter((r) => !r.interim);
			return out.length >= n && out.slice(0, n).every((r) => r.complete);
		}, timeout);
		return out;
	}

	/** Wait until the server closes; resolves true, or false on timeout. */
	waitClose(timeout = 5000) {
		return new Promise((resolve) => {
			const check = () => {
				if (this.closed) { done(); resolve(true); }
			};
			const timer = setTimeout(() => { done(); resolve(false); }, timeout * SLOW);
			const done = () => { clearTimeout(timer); this.waiters.delete(check); };
			this.waiters.add(check);
			check();
		});
	}
}

/**
 * Open a connection, write bytes (a string is sent as latin1), collect
 * everything until the server closes or timeout ms pass (or, with
 * expectResponses, until that many complete responses arrived). Returns
 * {text, buf, closed, reset, timedOut, elapsed, responses}.
 */
export async function rawRequest(port, data, { host = '127.0.0.1', timeout = 5000, expectResponses, methods } = {}) {
	const c = await RawConn.open(port, { host });
	const t0 = Date.now();
	const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
	await c.write(bytes);
	let timedOut = false;
	if (expectResponses) {
		try {
			await c.waitResponses(expectResponses, { methods, timeout });
		} catch {
			timedOut = !c.closed;
		}
	} else {
		timedOut = !(await c.waitClose(timeout));
	}
	const res = {
		text: c.text,
		buf: c.buf,
		closed: c.closed,
		reset: c.reset,
		timedOut,
		elapsed: Date.now() - t0,
		responses: parseResponses(c.buf, { methods, closed: c.closed }),
		conn: c,
	};
	c.destroy();
	return res;
}

function parseHeaderLines(lines) {
	const headerList = [];
	const headers = {};
	for (const l of lines) {
		const i = l.indexOf(':');
		if (i < 0) continue;
		const n = l.slice(0, i);
		const v = l.slice(i + 1).trim();
		headerList.push([n, v]);
		const k = n.toLowerCase();
		headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
	}
	return { headers, headerList };
}

/**
 * Split the bytes a server sent into responses. methods[i] is the method of
 * the i-th request (HEAD responses have no body). Interim 1xx responses
 * (except 101) are returned with interim: true and do not consume a method.
 * Each response: {version, status, reason, head, headers (lower-case name
 * -> values joined by ', '), headerList, body: Buffer, trailers, chunked,
 * complete}. A body without framing runs to the end of the data; it is
 * complete when opts.closed is true.
 */
export function parseResponses(input, { methods = [], closed = false } = {}) {
	const buf = Buffer.isBuffer(input) ? input : Buffer.from(input, 'latin1');
	const out = [];
	let off = 0;
	let idx = 0;
	while (off < buf.length) {
		const end = buf.indexOf('\r\n\r\n', off);
		if (end < 0) {
			out.push({ complete: false, partialHead: buf.toString('latin1', off) });
			break;
		}
		const head = buf.toString('latin1', off, end);
		const lines = head.split('\r\n');
		const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
		if (!m) {
			out.push({ complete: false, error: 'bad status line', head });
			break;
		}
		const { headers, headerList } = parseHeaderLines(lines.slice(1));
		const r = {
			version: m[1],
			status: Number(m[2]),
			reason: m[3] || '',
			head,
			headers,
			headerList,
			body: Buffer.alloc(0),
			trailers: {},
			chunked: false,
			complete: false,
		};
		off = end + 4;
		if (r.status >= 100 && r.status < 200 && r.status !== 101) {
			r.interim = true;
			r.complete = true;
			out.push(r);
			continue;
		}
		const method = (methods[idx++] || 'GET').toUpperCase();
		const te = (headers['transfer-encoding'] || '').toLowerCase();
		if (method === 'HEAD' || r.status === 204 || r.status === 304 || r.status === 101) {
			r.complete = true;
		} else if (te.split(',').map((s) => s.trim()).pop() === 'chunked') {
			r.chunked = true;
			const parts = [];
			let p = off;
			let ok = false;
			for (;;) {
				const le = buf.indexOf('\r\n', p);
				if (le < 0) break;
				const size = parseInt(buf.toString('latin1', p, le).split(';')[0].trim(), 16);
				if (Number.isNaN(size)) { r.error = 'bad chunk size'; break; }
				p = le + 2;
				if (size === 0) {
					// trailers until an empty line
					const tEnd = buf.indexOf('\r\n\r\n', p - 2);
					if (tEnd < 0) break;
					const tl = buf.toString('latin1', p, tEnd).split('\r\n').filter(Boolean);
					r.trailers = parseHeaderLines(tl).headers;
					p = tEnd + 4;
					ok = true;
					break;
				}
				if (p + size + 2 > buf.length) {
					parts.push(buf.subarray(p, Math.min(buf.length, p + size)));
					p = buf.length;
					break;
				}
				parts.push(buf.subarray(p, p + size));
				p += size + 2;
			}
			r.body = Buffer.concat(parts);
			r.complete = ok;
			off = ok ? p : buf.length;
		} else if (headers['content-length'] !== undefined) {
			const n = Number(headers['content-length']);
			const have = Math.min(n, buf.length - off);
			r.body = buf.subarray(off, off + have);
			r.complete = have === n;
			off += have;
		} else {
			r.body = buf.subarray(off);
			r.closeDelimited = true;
			r.complete = closed;
			off = buf.length;
		}
		out.push(r);
		if (!r.complete) break;
	}
	return out;
}

/**
 * One request with node:http. opts: method, path, headers, body (Buffer,
 * string or Readable), host (connect address), agent (default false: own
 * connection), timeout (ms), onResponse(res) called before the body is
 * read (may return a promise, e.g. to pause). Resolves {status, headers,
 * rawHeaders, trailers, body, informational, localPort, elapsed}; rejects
 * on errors (err.code) and timeout.
 */
export function request(port, opts = {}) {
	const { method = 'GET', path = '/', headers = {}, body, host = '127.0.0.1', agent = false, timeout = 10000, collect = true } = opts;
	return new Promise((resolve, reject) => {
		const t0 = Date.now();
		const informational = [];
		const req = http.request({ host, port, method, path, headers, agent });
		const timer = setTimeout(() => {
			const e = new Error(`request ${method} ${path} timed out after ${timeout * SLOW} ms`);
			e.code = 'TEST_TIMEOUT';
			req.destroy(e);
		}, timeout * SLOW);
		req.on('information', (info) => informational.push({ status: info.statusCode, headers: info.headers }));
		req.on('error', (e) => { clearTimeout(timer); reject(e); });
		req.on('response', async (res) => {
			const localPort = res.socket && res.socket.localPort;
			try {
				if (opts.onResponse) await opts.onResponse(res);
			} catch (e) {
				clearTimeout(timer);
				req.destroy();
				reject(e);
				return;
			}
			const chunks = [];
			let length = 0;
			const hash = opts.hash ? opts.hash() : null;
			res.on('data', (d) => {
				length += d.length;
				if (hash) hash.update(d);
				if (collect) chunks.push(d);
			});
			res.on('end', () => {
				clearTimeout(timer);
				resolve({
					status: res.statusCode,
					headers: res.headers,
					rawHeaders: res.rawHeaders,
					trailers: res.trailers,
					body: Buffer.concat(chunks),
					length,
					sha256: hash ? hash.digest('hex') : undefined,
					informational,
					localPort,
					elapsed: Date.now() - t0,
					complete: res.complete,
				});
			});
			res.on('error', (e) => { clearTimeout(timer); reject(e); });
			res.on('aborted', () => {
				clearTimeout(timer);
				const e = new Error('response aborted');
				e.code = 'ECONNRESET';
				reject(e);
			});
		});
		if (body === undefined) req.end();
		else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
		else body.pipe(req);
	});
}

/** request() and parse the body as JSON. */
/**
 * GET / on 127.0.0.1:port through agent (keep-alive tests) from a test
 * backend: {backend: the backend's name, port: the client's local port}.
 */
export function getBackend(port, agent) {
	return new Promise((resolve, reject) => {
		const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
			let body = '';
			res.setEncoding('utf8');
			res.on('data', (d) => { body += d; });
			res.on('end', () => resolve({ backend: JSON.parse(body).backend, port: req.socket.localPort }));
		});
		req.setTimeout(5000, () => req.destroy(new Error('timeout')));
		req.on('error', reject);
	});
}

export async function requestJson(port, opts) {
	const r = await request(port, opts);
	try {
		r.json = JSON.parse(r.body.toString('utf8'));
	} catch {
		r.json = null;
	}
	return r;
}

/**
 * Write to a RawConn as fast as it takes the bytes, honouring backpressure:
 * next(pos) returns the next Buffer (pos = bytes written so far). Stops when
 * total bytes are written, until() turns true (polled between writes and
 * every 20 ms while blocked), the connection closes or fails, or timeout ms
 * pass. Resolves {written, why: 'done' | 'until' | 'closed' | 'error' |
 * 'timeout'}; written counts bytes handed to the socket.
 */
export function pump(c, { next, total = Infinity, until, timeout = 10000 }) {
	return new Promise((resolve) => {
		const sock = c.sock;
		const t0 = Date.now();
		let written = 0;
		let finished = false;
		const finish = (why) => {
			if (finished) return;
			finished = true;
			clearInterval(poll);
			sock.removeListener('drain', go);
			c.waiters.delete(onState);
			resolve({ written, why });
		};
		const onState = () => {
			if (c.error) finish('error');
			else if (c.closed) finish('closed');
		};
		function go() {
			while (!finished) {
				if (written >= total) return finish('done');
				if (until && until()) return finish('until');
				if (c.error) return finish('error');
				if (c.closed || sock.destroyed || !sock.writable) return finish('closed');
				let b = next(written);
				if (written + b.length > total) b = b.subarray(0, total - written);
				written += b.length;
				if (!sock.write(b)) return; // 'drain' calls go() again
			}
		}
		const poll = setInterval(() => {
			if (until && until()) finish('until');
			else if (Date.now() - t0 > timeout * SLOW) finish('timeout');
		}, 20);
		sock.on('drain', go);
		c.waiters.add(onState);
		go();
	});
}
