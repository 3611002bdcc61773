// Persistent connections: client keep-alive, upstream reuse, a backend
// closing its idle connection, pipelining, and the client idle timeout.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { SLOW, sleep, startSluice } from './lib/sluice.mjs';
import { patternSha, sha256, startBackend } from './lib/backend.mjs';
import { RawConn, requestJson } from './lib/client.mjs';

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
