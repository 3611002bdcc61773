// Upstream failures: refused and timed-out connects with retries, a
// backend that never answers, no route, a backend that dies mid-response.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SLOW, freePort, poolOf, sleep, startSluice } from './lib/sluice.mjs';
import { readHead, startBackend, startBlackhole, startRawServer } from './lib/backend.mjs';
import { RawConn, parseResponses, pump, rawRequest, request, requestJson } from './lib/client.mjs';

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

// A server may answer before it has read the request body (413, 401...).
// The answer must reach the client even though the client is still
// sending: closing with unread input would reset the connection and the
// reset destroys the answer in the client's receive buffer.
test('early 413 during a 20 MB upload reaches all 10 clients', async (t) => {
	const BODY = 20 * 1024 * 1024;
	const raw = await startRawServer(async (sock) => {
		await readHead(sock); // leaves the socket paused: the body is never read
		sock.write('HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large');
		sock.end();
	}, { t });
	const s = await startSluice({ backends: [raw], t });
	const chunk = Buffer.alloc(64 * 1024, 'u');
	// Even-numbered clients are "blocking" ones: they read only after the
	// whole body is written (a reset on a write error then loses what
	// arrived meanwhile); odd-numbered ones read all along.
	const one = async (i) => {
		const c = await RawConn.open(s.port);
		t.after(() => c.destroy());
		const blocking = i % 2 === 0;
		if (blocking) c.sock.pause();
		await c.write(`POST /upload?i=${i} HTTP/1.1\r\nHost: early.test\r\nContent-Length: ${BODY}\r\n\r\n`);
		const p = await pump(c, { next: () => chunk, total: BODY, timeout: 15000 });
		if (p.why === 'done') c.end();
		if (blocking) c.sock.resume();
		await c.waitClose(5000);
		const rs = parseResponses(c.buf, { closed: c.closed });
		return { i, status: rs[0]?.status, complete: rs[0]?.complete, body: rs[0]?.body?.toString(), pump: p, error: c.error?.code, text: c.text.slice(0, 120) };
	};
	const results = await Promise.all(Array.from({ length: 10 }, (_, i) => one(i)));
	const bad = results.filter((r) => r.status !== 413 || !r.complete);
	assert.deepEqual(bad, [], 'every client got the whole 413');
	assert.ok(results.every((r) => r.body === 'too large'));
	const lines = await s.waitForAccessLog(10);
	assert.ok(lines.every((x) => x.status === 413), JSON.stringify(lines.map((x) => [x.status, x.termination])));
});

// The same with the answer delayed until the upload has backed up into
// sluice (the server does not read, so sluice stops reading the client with
// its input buffer full): the lingering close must still drain that input,
// or it ends in a reset after the linger time. Whether the buffer is full
// at that moment depends on how the reads fell, hence several rounds.
test('early 413 after the upload backed up: a client reading only at the end gets it (5 rounds)', async (t) => {
	const BODY = 20 * 1024 * 1024;
	const raw = await startRawServer(async (sock) => {
		await readHead(sock);
		await sleep(300);
		sock.write('HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large');
		sock.end();
	}, { t });
	const s = await startSluice({ backends: [raw], t });
	const chunk = Buffer.alloc(64 * 1024, 'u');
	for (let i = 0; i < 5; i++) {
		const c = await RawConn.open(s.port);
		t.after(() => c.destroy());
		c.sock.pause();
		await c.write(`POST /upload?i=${i} HTTP/1.1\r\nHost: early.test\r\nContent-Length: ${BODY}\r\n\r\n`);
		const t0 = Date.now();
		const p = await pump(c, { next: () => chunk, total: BODY, timeout: 15000 });
		const dt = Date.now() - t0;
		if (p.why === 'done') c.end();
		c.sock.resume();
		await c.waitClose(5000);
		const [res] = parseResponses(c.buf, { closed: c.closed });
		assert.equal(res?.status, 413, `round ${i}: upload ${JSON.stringify(p)} after ${dt} ms, error ${c.error?.code}`);
		assert.equal(res.body.toString(), 'too large');
		c.destroy();
	}
});

// body_idle when the *server* stops reading the request body: sluice stops
// reading from the client (backpressure), so the client is not the one
// that stalled and must not be told 408.
test('server stops reading the request body -> 504 after body_idle, log upstream_timeout', async (t) => {
	const raw = await startRawServer(async (sock, i, r) => {
		r.requests.push(await readHead(sock)); // and never reads the body
	}, { t });
	const s = await startSluice({ backends: [raw], timeouts: { body_idle: '1s', response_header: '30s' }, t });
	const BODY = 50 * 1024 * 1024;
	const chunk = Buffer.alloc(64 * 1024, 'b');
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write(`POST /upload HTTP/1.1\r\nHost: stall.test\r\nContent-Length: ${BODY}\r\n\r\n`);
	const t0 = Date.now();
	const p = await pump(c, { next: () => chunk, total: BODY, until: () => c.length > 0, timeout: 10000 });
	assert.notEqual(p.why, 'done', `the whole body went through (${p.written} bytes): the server should have blocked it`);
	assert.ok(await c.waitFor((b) => b.length > 0 || c.closed, 6000).then(() => true, () => c.closed), `an answer or a close; pump ${JSON.stringify(p)}`);
	const dt = Date.now() - t0;
	assert.ok(dt >= 900, `not before body_idle (${dt} ms)`);
	assert.ok(dt <= 6000 * SLOW, `${dt} ms`);
	if (c.length) {
		const [res] = parseResponses(c.buf);
		assert.equal(res?.status, 504, c.text.slice(0, 200));
	}
	assert.equal(raw.requests.length, 1, 'the head reached the server');
	const lines = await s.waitForAccessLog((l) => l.some((x) => x.path === '/upload'));
	const line = lines.find((x) => x.path === '/upload');
	assert.equal(line.termination, 'upstream_timeout');
	assert.equal(line.phase, 'request');
});

test('client stops sending mid-body while the server reads -> 408, log client_timeout', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { body_idle: '1s' }, t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('POST /upload HTTP/1.1\r\nHost: stall.test\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(30000));
	const [res] = await c.waitResponses(1, { timeout: 5000 });
	assert.equal(res.status, 408);
	assert.ok(await c.waitClose(3000), 'closed');
	const lines = await s.waitForAccessLog((l) => l.some((x) => x.path === '/upload'));
	const line = lines.find((x) => x.path === '/upload');
	assert.equal(line.termination, 'client_timeout');
	assert.equal(line.phase, 'request');
});

// accept() failing with EMFILE leaves the connection queued, so the
// listener stays readable: sluice must back off instead of spinning and
// logging each failure, and must accept again once descriptors are free.
test('accept() failing (EMFILE): a few "pausing accepts" lines, no storm, recovers', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], ulimitNofile: 40, timeouts: { client_header: '20s' }, t });
	const conns = [];
	t.after(() => conns.forEach((c) => c.destroy()));
	for (let i = 0; i < 60; i++) conns.push(await RawConn.open(s.port));
	await sleep(1000);
	const log = s.errorLog();
	const failed = (log.match(/accept\(\) failed/g) || []).length;
	assert.ok(failed < 50, `${failed} "accept() failed" lines in 1 s`);
	assert.match(log, /pausing accepts/);
	assert.equal(s.exitInfo, null, 'still running');
	for (const c of conns) c.destroy();
	const t0 = Date.now();
	let r;
	for (;;) {
		r = await request(s.port, { path: '/echo', timeout: 2000 }).catch((e) => e);
		if (!(r instanceof Error) || Date.now() - t0 > 2000 * SLOW) break;
		await sleep(100);
	}
	assert.ok(!(r instanceof Error), `a new request works again: ${r.message}`);
	assert.equal(r.status, 200);
	assert.ok(Date.now() - t0 <= 2000 * SLOW, `within 2 s (${Date.now() - t0} ms)`);
});
