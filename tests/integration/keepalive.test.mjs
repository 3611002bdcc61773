// Persistent connections: client keep-alive, upstream reuse, a backend
// closing its idle connection, pipelining, and the client idle timeout.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { SANITIZERS, SLOW, sleep, startSluice } from './lib/sluice.mjs';
import { patternSha, sha256, startBackend } from './lib/backend.mjs';
import { RawConn, parseResponses, pump, requestJson } from './lib/client.mjs';

function keepAliveAgent(t) {
	const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
	t.after(() => agent.destroy());
	return agent;
}

test('several requests on one client connection, one upstream connection', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const agent = keepAliveAgent(t);
	const local = new Set();
	const upstream = new Set();
	for (let i = 0; i < 6; i++) {
		const r = await requestJson(s.port, { path: `/echo?i=${i}`, agent });
		assert.equal(r.status, 200);
		assert.equal(r.json.url, `/echo?i=${i}`);
		local.add(r.localPort);
		upstream.add(r.json.remotePort);
	}
	assert.equal(local.size, 1, 'client kept one connection');
	assert.equal(upstream.size, 1, `backend saw one upstream connection (ports ${[...upstream]})`);
	assert.equal(b.connections, 1);
});

test('upstream connection is reused across client connections', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const ports = [];
	for (let i = 0; i < 4; i++) {
		const r = await requestJson(s.port, { path: '/echo' }); // new client connection each time
		assert.equal(r.status, 200);
		ports.push(r.json.remotePort);
	}
	assert.equal(new Set(ports).size, 1, `one upstream connection reused: ${ports}`);
});

test('keepalive = 0 opens a new upstream connection per request', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ pools: { p: { keepalive: 0, servers: [{ name: 'a', backend: b }] } }, t });
	const agent = keepAliveAgent(t);
	for (let i = 0; i < 3; i++) {
		const r = await requestJson(s.port, { path: '/echo', agent });
		assert.equal(r.status, 200);
	}
	assert.equal(b.connections, 3);
});

test('after the backend closes its idle connection the next request still succeeds', async (t) => {
	const b = await startBackend({ name: 'a', idleCloseMs: 200, t });
	const s = await startSluice({ backends: [b], t });
	const agent = keepAliveAgent(t);
	const r1 = await requestJson(s.port, { path: '/echo?1', agent });
	assert.equal(r1.status, 200);
	await sleep(600); // the backend has closed the idle upstream connection
	for (let i = 2; i <= 4; i++) {
		const r = await requestJson(s.port, { path: `/echo?${i}`, agent });
		assert.equal(r.status, 200, `request ${i}`);
		assert.equal(r.json.url, `/echo?${i}`);
		await sleep(300);
	}
	assert.ok(b.connections >= 2, `a new upstream connection was opened (connections: ${b.connections}, ports ${b.requests.map((r) => r.remotePort)})`);
});

test('a POST after the backend closed its idle connection still succeeds', async (t) => {
	const b = await startBackend({ name: 'a', idleCloseMs: 200, t });
	const s = await startSluice({ backends: [b], t });
	const agent = keepAliveAgent(t);
	assert.equal((await requestJson(s.port, { path: '/echo', agent })).status, 200);
	await sleep(600);
	const body = Buffer.alloc(20000, 'q');
	const r = await requestJson(s.port, { method: 'POST', path: '/upload', body, agent, headers: { 'Content-Length': body.length } });
	assert.equal(r.status, 200);
	assert.equal(r.json.sha256, sha256(body));
});

test('pipelining: three requests written at once get three responses in order', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write(
		'GET /delay/100?first HTTP/1.1\r\nHost: pipe.test\r\n\r\n'
		+ 'GET /bytes/5000 HTTP/1.1\r\nHost: pipe.test\r\n\r\n'
		+ 'GET /status/202 HTTP/1.1\r\nHost: pipe.test\r\n\r\n');
	const rs = await c.waitResponses(3, { timeout: 5000 });
	assert.deepEqual(rs.slice(0, 3).map((r) => r.status), [200, 200, 202]);
	assert.equal(JSON.parse(rs[0].body.toString()).url, '/delay/100?first');
	assert.equal(rs[1].body.length, 5000);
	assert.equal(sha256(rs[1].body), patternSha(5000));
	assert.equal(rs[2].body.toString(), 'status 202\n');
	assert.equal(rs.length, 3, 'nothing more');
	assert.ok(!c.closed, 'connection stays open');
});

test('pipelining: a request split across writes and a POST body in between', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('POST /echo?p HTTP/1.1\r\nHost: pipe.test\r\nContent-Length: 4\r\n\r\nabcdGET /echo?g HTTP/1.1\r\nHo');
	await sleep(100);
	await c.write('st: pipe.test\r\n\r\n');
	const rs = await c.waitResponses(2, { timeout: 5000 });
	const j0 = JSON.parse(rs[0].body.toString());
	const j1 = JSON.parse(rs[1].body.toString());
	assert.equal(j0.url, '/echo?p');
	assert.equal(j0.body, 'abcd');
	assert.equal(j1.url, '/echo?g');
	assert.equal(j1.method, 'GET');
});

test('client_idle: an idle keep-alive client connection is closed after client_idle', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { client_idle: '1s', client_header: '10s' }, t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('GET /echo HTTP/1.1\r\nHost: idle.test\r\n\r\n');
	await c.waitResponses(1);
	const t0 = Date.now();
	const closed = await c.waitClose(4000);
	const dt = Date.now() - t0;
	assert.ok(closed, 'closed by sluice');
	assert.ok(dt >= 800, `not before client_idle (${dt} ms)`);
	assert.ok(dt <= 2500 * SLOW, `soon after client_idle (${dt} ms)`);
});

test('client_idle does not cut a connection that keeps sending requests', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { client_idle: '1s', client_header: '10s' }, t });
	const agent = keepAliveAgent(t);
	const local = new Set();
	for (let i = 0; i < 5; i++) {
		const r = await requestJson(s.port, { path: '/echo', agent });
		assert.equal(r.status, 200);
		local.add(r.localPort);
		await sleep(500);
	}
	assert.equal(local.size, 1, 'same client connection throughout');
});

test('Connection: close from the client: response then close', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('GET /echo HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n');
	const [r] = await c.waitResponses(1);
	assert.equal(r.status, 200);
	assert.ok(await c.waitClose(2000), 'closed after the response');
	assert.match(r.headers.connection || '', /close/i);
});

test('upstream_idle: an idle upstream connection is closed by sluice', async (t) => {
	const b = await startBackend({ name: 'a', keepAliveTimeout: 30000, t });
	const s = await startSluice({ backends: [b], timeouts: { upstream_idle: '500ms' }, t });
	assert.equal((await requestJson(s.port, { path: '/echo' })).status, 200);
	assert.equal(b.closedConnections, 0);
	const t0 = Date.now();
	while (b.closedConnections === 0 && Date.now() - t0 < 3000 * SLOW) await sleep(20);
	const dt = Date.now() - t0;
	assert.equal(b.closedConnections, 1, 'upstream connection closed');
	assert.ok(dt <= 2000 * SLOW, `closed ${dt} ms after the response`);
	assert.equal((await requestJson(s.port, { path: '/echo' })).status, 200, 'a new one is opened afterwards');
});

test('pipelining then half-close: both requests answered in order, then sluice closes', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write(
		'GET /delay/100?first HTTP/1.1\r\nHost: pipe.test\r\n\r\n'
		+ 'GET /echo?second HTTP/1.1\r\nHost: pipe.test\r\n\r\n');
	c.end();
	assert.ok(await c.waitClose(5000), `sluice closes after the answers; received:\n${c.text}`);
	const rs = parseResponses(c.buf, { closed: true });
	assert.equal(rs.length, 2, `two answers, got ${rs.length}; first with Connection: ${rs[0]?.headers.connection}`);
	assert.deepEqual(rs.map((r) => [r.status, r.complete]), [[200, true], [200, true]], c.text);
	assert.equal(JSON.parse(rs[0].body.toString()).url, '/delay/100?first');
	assert.equal(JSON.parse(rs[1].body.toString()).url, '/echo?second');
	const lines = await s.waitForAccessLog(2);
	await sleep(100);
	assert.equal(s.accessLog().length, 2, 'two access log lines');
	assert.deepEqual(lines.map((x) => [x.path, x.status, x.termination]), [['/delay/100?first', 200, 'ok'], ['/echo?second', 200, 'ok']]);
});

// A client that pipelines requests and never reads the answers must not
// make sluice buffer the answers without bound: it stops reading from
// that client while its output is backed up.
test('pipelined flood without reading: memory stays bounded, answers all arrive in order later', async (t) => {
	const b = await startBackend({ name: 'a', t });
	// No access log: sluice answers as fast as it can, as a flood would make it.
	const s = await startSluice({ backends: [b], routes: [{ host: 'only.example', pool: 'p' }], accessLog: 'off', logLevel: 'warn', t });
	const rssBefore = s.procStatusBytes('VmRSS');
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	c.sock.pause(); // do not read: the answers pile up
	// One prebuilt buffer of requests, written again and again, to go fast.
	const PER_CHUNK = 2000;
	const chunk = Buffer.from('GET /nope HTTP/1.1\r\nHost: other.example\r\n\r\n'.repeat(PER_CHUNK), 'latin1');
	let n = 0;
	const next = () => {
		n += PER_CHUNK;
		return chunk;
	};
	const t0 = Date.now();
	const p = await pump(c, { next, until: () => Date.now() - t0 >= 2000, timeout: 5000 });
	const sent = n;
	const rssAfter = s.procStatusBytes('VmRSS');
	assert.equal(p.why, 'until', `kept writing for 2 s (${JSON.stringify(p)}, error ${c.error?.code})`);
	assert.ok(!c.closed && !c.error, 'the connection is alive');
	assert.equal(s.exitInfo, null, 'sluice is alive');
	const growth = rssAfter - rssBefore;
	t.diagnostic(`${sent} requests written in 2 s; VmRSS ${rssBefore} -> ${rssAfter} (+${(growth / 1048576).toFixed(1)} MiB)`);
	if (!SANITIZERS) assert.ok(growth < 32 * 1048576, `VmRSS grew by ${(growth / 1048576).toFixed(1)} MiB`);

	// Now read: one 404 per request, in order. Count the answers
	// as they stream in (the whole stream is too big to re-parse).
	const MARK = Buffer.from('HTTP/1.1 404 ');
	let count = 0;
	let tail = Buffer.alloc(0);
	let onData;
	const allIn = new Promise((resolve) => {
		onData = (d) => {
			const buf = tail.length ? Buffer.concat([tail, d]) : d;
			let i = 0;
			for (;;) {
				const j = buf.indexOf(MARK, i);
				if (j < 0) break;
				count++;
				i = j + MARK.length;
			}
			tail = buf.subarray(Math.max(i, buf.length - MARK.length + 1));
			if (count >= sent) resolve();
		};
		c.sock.on('data', onData);
		c.waiters.add(() => { if (c.closed) resolve(); });
	});
	c.sock.resume();
	let timer;
	const timeout = new Promise((r) => { timer = setTimeout(r, 30000 * SLOW); });
	await Promise.race([allIn, timeout]);
	clearTimeout(timer);
	c.sock.removeListener('data', onData);
	assert.equal(count, sent, `one answer per request (closed ${c.closed})`);
	// The first answers, parsed in full.
	const first = parseResponses(c.buf.subarray(0, 64 * 1024)).filter((r) => r.complete);
	assert.ok(first.length >= 100, `${first.length} complete answers parsed`);
	assert.ok(first.every((r) => r.status === 404), `statuses ${[...new Set(first.map((r) => r.status))]}`);
	assert.ok(!c.closed, 'the connection is still open');
	// And it goes on: one more request is answered.
	c.chunks = [];
	c.length = 0;
	await c.write('GET /echo HTTP/1.1\r\nHost: only.example\r\n\r\n');
	const [last] = await c.waitResponses(1);
	assert.equal(last.status, 200);
});
