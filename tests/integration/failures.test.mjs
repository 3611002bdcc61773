// Upstream failures: refused and timed-out connects with retries, a
// backend that never answers, no route, a backend that dies mid-response.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SLOW, freePort, poolOf, sleep, startSluice } from './lib/sluice.mjs';
import { readHead, startBackend, startBlackhole, startRawServer } from './lib/backend.mjs';
import { RawConn, parseResponses, rawRequest, request, requestJson } from './lib/client.mjs';

test('one closed server + one live: every request succeeds (retry)', async (t) => {
	const dead = await freePort();
	const live = await startBackend({ name: 'live', t });
	const s = await startSluice({
		pools: { p: { retries: 2, servers: [{ name: 'dead', address: `127.0.0.1:${dead}` }, { name: 'live', backend: live }] } },
		t,
	});
	for (let i = 0; i < 20; i++) {
		const r = await requestJson(s.port, { path: `/echo?i=${i}` });
		assert.equal(r.status, 200, `request ${i}`);
		assert.equal(r.json.backend, 'live');
	}
	assert.equal(live.requests.length, 20, 'each request forwarded exactly once');
	// The error log names the failed call, the address and the errno text.
	await s.waitForLog(new RegExp(`\\[warn\\] s\\d+ 127\\.0\\.0\\.1:\\d+: connect\\(127\\.0\\.0\\.1:${dead}\\).* failed: Connection refused`));
});

test('a POST body is not lost when the first server refuses', async (t) => {
	const dead = await freePort();
	const live = await startBackend({ name: 'live', t });
	const s = await startSluice({
		pools: { p: { retries: 1, servers: [{ name: 'dead', address: `127.0.0.1:${dead}` }, { name: 'live', backend: live }] } },
		t,
	});
	const body = Buffer.alloc(50000, 'p');
	for (let i = 0; i < 4; i++) {
		const r = await requestJson(s.port, { method: 'POST', path: '/upload', body, headers: { 'Content-Length': body.length } });
		assert.equal(r.status, 200);
		assert.equal(r.json.bodyLength, body.length);
	}
});

test('all servers closed -> 502 with a short text body', async (t) => {
	const d1 = await freePort();
	const d2 = await freePort();
	const s = await startSluice({
		pools: { p: { retries: 2, servers: [{ name: 'x', address: `127.0.0.1:${d1}` }, { name: 'y', address: `127.0.0.1:${d2}` }] } },
		t,
	});
	const r = await request(s.port, { path: '/echo' });
	assert.equal(r.status, 502);
	assert.ok(r.body.length > 0 && r.body.length < 512, `short body: ${r.body.length} bytes`);
	assert.match(r.body.toString(), /502/);
	assert.match(r.headers['content-type'] || '', /^text\/plain/);
	assert.ok(r.elapsed < 2000 * SLOW, `refused connects fail fast (${r.elapsed} ms)`);
});

test('connect timeout with only that server -> 502 after the connect timeouts', async (t) => {
	const bh = await startBlackhole({ t });
	const retries = 2;
	const s = await startSluice({
		pools: { p: { retries, servers: [{ name: 'bh', address: bh.address }] } },
		timeouts: { connect: '500ms' },
		t,
	});
	const r = await request(s.port, { path: '/echo', timeout: 10000 });
	assert.equal(r.status, 502);
	assert.match(r.body.toString(), /502/);
	// One attempt, or one per retry if the same server is tried again.
	assert.ok(r.elapsed >= 450, `waited for the connect timeout (${r.elapsed} ms)`);
	assert.ok(r.elapsed <= ((retries + 1) * 500 + 1000) * SLOW, `gave up after the retries (${r.elapsed} ms)`);
});

test('connect timeout on one server -> the next server answers', async (t) => {
	const bh = await startBlackhole({ t });
	const live = await startBackend({ name: 'live', t });
	const s = await startSluice({
		pools: { p: { retries: 1, servers: [{ name: 'bh', address: bh.address }, { name: 'live', backend: live }] } },
		timeouts: { connect: '500ms' },
		t,
	});
	let slow = 0;
	for (let i = 0; i < 4; i++) {
		const r = await requestJson(s.port, { path: '/echo', timeout: 5000 });
		assert.equal(r.status, 200);
		assert.equal(r.json.backend, 'live');
		if (r.elapsed >= 450) slow++;
		assert.ok(r.elapsed < 1500 * SLOW, `${r.elapsed} ms`);
	}
	assert.ok(slow >= 1, 'at least one request went through the timed-out server first');
});

test('backend that never answers -> 504 after response_header', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { response_header: '1s' }, t });
	const r = await request(s.port, { path: '/hang', timeout: 10000 });
	assert.equal(r.status, 504);
	assert.match(r.body.toString(), /504/);
	assert.ok(r.elapsed >= 900, `${r.elapsed} ms`);
	assert.ok(r.elapsed <= 3000 * SLOW, `${r.elapsed} ms`);
	assert.equal(b.requestsTo('/hang').length, 1, 'not retried on another connection');
});

test('no route for the host -> 404, nothing forwarded', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({
		backends: [b],
		routes: [{ host: 'only.example', path: '/', pool: 'p' }],
		t,
	});
	const r = await request(s.port, { path: '/echo', headers: { Host: 'other.example' } });
	assert.equal(r.status, 404);
	assert.match(r.body.toString(), /404/);
	const ok = await request(s.port, { path: '/echo', headers: { Host: 'only.example' } });
	assert.equal(ok.status, 200);
	assert.equal(b.requests.length, 1);
});

test('backend closes mid-response -> client connection is cut, log says upstream_closed', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('GET /truncate/1000 HTTP/1.1\r\nHost: cut.test\r\n\r\n');
	assert.ok(await c.waitClose(5000), 'sluice closes the client connection');
	const rs = parseResponses(c.buf, { closed: false });
	assert.ok(!rs.length || !rs[0].complete, `no complete response: ${c.text.slice(0, 300)}`);
	if (rs.length && rs[0].status) assert.equal(rs[0].status, 200, 'the head was already relayed');
	const lines = await s.waitForAccessLog((l) => l.some((x) => x.path === '/truncate/1000'));
	const line = lines.find((x) => x.path === '/truncate/1000');
	assert.equal(line.termination, 'upstream_closed');
	assert.equal(line.phase, 'response_body');
});

test('backend closes before sending a head -> 502', async (t) => {
	const raw = await startRawServer(async (sock) => {
		await readHead(sock);
		sock.destroy();
	}, { t });
	const s = await startSluice({ backends: [raw], t });
	const r = await request(s.port, { path: '/x' });
	assert.equal(r.status, 502);
});

test('backend answers with garbage -> 502', async (t) => {
	const raw = await startRawServer(async (sock) => {
		await readHead(sock);
		sock.end('HTTP/1.1 two hundred OK\r\nContent-Length: 2\r\n\r\nok');
	}, { t });
	const s = await startSluice({ backends: [raw], t });
	const r = await request(s.port, { path: '/x' });
	assert.equal(r.status, 502);
	const lines = await s.waitForAccessLog((l) => l.some((x) => x.path === '/x'));
	assert.equal(lines.find((x) => x.path === '/x').termination, 'bad_response');
});

test('backend answers with Content-Length and Transfer-Encoding -> 502, or chunked wins and CL is dropped', async (t) => {
	const raw = await startRawServer(async (sock) => {
		await readHead(sock);
		sock.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
	}, { t });
	const s = await startSluice({ backends: [raw], t });
	const r = await rawRequest(s.port, 'GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
	const [res] = r.responses;
	assert.ok(res?.status === 502 || res?.status === 200, r.text);
	if (res.status === 200) {
		// RFC 9112 6.3: Transfer-Encoding overrides; both must not be relayed.
		assert.ok(!(res.headers['content-length'] !== undefined && res.headers['transfer-encoding'] !== undefined), r.text);
		assert.equal(res.body.length, 0);
	}
});

test('client stalls mid-upload -> cut after body_idle, logged as a timeout in phase request', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { body_idle: '1s' }, t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('POST /upload HTTP/1.1\r\nHost: stall.test\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(1000));
	const t0 = Date.now();
	assert.ok(await c.waitClose(5000), 'connection closed');
	const dt = Date.now() - t0;
	assert.ok(dt >= 900 && dt <= 3000 * SLOW, `closed after ${dt} ms`);
	assert.doesNotMatch(c.text, /^HTTP\/1\.1 2/, 'no success answer');
	const lines = await s.waitForAccessLog((l) => l.some((x) => x.path === '/upload'));
	const line = lines.find((x) => x.path === '/upload');
	// The spec does not say whether a stalled client body is the client's
	// timeout or the body timeout: either names the cause.
	assert.ok(['body_timeout', 'client_timeout'].includes(line.termination), line.termination);
	assert.equal(line.phase, 'request');
	assert.ok(b.requestsTo('/upload').every((r) => !r.complete), 'the backend never got a complete body');
});

test('backend stalls mid-response -> client cut after body_idle, log body_timeout', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { body_idle: '1s' }, t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('GET /stall/1000 HTTP/1.1\r\nHost: stall.test\r\n\r\n');
	await c.waitFor((buf) => buf.length >= 1000);
	const t0 = Date.now();
	assert.ok(await c.waitClose(5000), 'connection closed');
	const dt = Date.now() - t0;
	assert.ok(dt >= 800 && dt <= 3000 * SLOW, `closed after ${dt} ms`);
	const [res] = parseResponses(c.buf, { closed: false });
	assert.equal(res.status, 200);
	assert.ok(!res.complete, 'the response is visibly incomplete');
	const lines = await s.waitForAccessLog((l) => l.some((x) => x.path === '/stall/1000'));
	const line = lines.find((x) => x.path === '/stall/1000');
	assert.equal(line.termination, 'body_timeout');
	assert.equal(line.phase, 'response_body');
});

test('a slow but steady download is not cut by body_idle', async (t) => {
	const b = await startBackend({
		name: 'a',
		t,
		routes: {
			'/drip': async (req, res) => {
				res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 10 });
				for (let i = 0; i < 10; i++) {
					res.write('x');
					await sleep(250);
				}
				res.end();
			},
		},
	});
	const s = await startSluice({ backends: [b], timeouts: { body_idle: '1s' }, t });
	const r = await request(s.port, { path: '/drip' });
	assert.equal(r.status, 200);
	assert.equal(r.body.toString(), 'xxxxxxxxxx');
	assert.ok(r.elapsed >= 2000, 'took longer than body_idle in total');
});
