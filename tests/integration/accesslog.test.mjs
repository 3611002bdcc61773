// The access log: one JSON object per exchange with the documented fields,
// types, terminations and phases.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { freePort, startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';
import { RawConn, rawRequest, request, requestJson } from './lib/client.mjs';

const FIELDS = ['time', 'worker', 'session', 'client', 'method', 'path', 'status', 'bytes_in', 'bytes_out',
	'connect_ms', 'first_byte_ms', 'total_ms', 'server', 'request_id', 'termination', 'phase'];
const TERMINATIONS = ['ok', 'client_closed', 'client_timeout', 'bad_request', 'header_too_large', 'uri_too_long',
	'not_implemented', 'no_route', 'no_server', 'connect_failed', 'connect_timeout', 'upstream_timeout', 'upstream_closed',
	'bad_response', 'body_timeout', 'rate_limited', 'shutdown', 'internal'];
const PHASES = ['head', 'connect', 'request', 'response_head', 'response_body', 'done'];

function assertShape(l) {
	for (const f of FIELDS) assert.ok(f in l, `field ${f} present in ${JSON.stringify(l)}`);
	assert.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
	assert.ok(Math.abs(Date.parse(l.time) - Date.now()) < 60000, 'time is now-ish');
	assert.ok(Number.isInteger(l.worker) && l.worker >= 0, 'worker');
	assert.ok(Number.isInteger(l.session) && l.session >= 0, 'session');
	assert.match(l.client, /^127\.0\.0\.1:\d+$/);
	assert.equal(typeof l.method, 'string');
	assert.equal(typeof l.path, 'string');
	assert.ok(Number.isInteger(l.status), 'status');
	assert.ok(Number.isInteger(l.bytes_in) && l.bytes_in >= 0, 'bytes_in');
	assert.ok(Number.isInteger(l.bytes_out) && l.bytes_out >= 0, 'bytes_out');
	for (const f of ['connect_ms', 'first_byte_ms', 'total_ms']) {
		assert.ok(l[f] === null || (typeof l[f] === 'number' && l[f] >= 0), `${f}: ${l[f]}`);
	}
	assert.equal(typeof l.total_ms, 'number');
	assert.ok(l.server === null || typeof l.server === 'string', 'server');
	assert.ok(l.request_id === null || typeof l.request_id === 'string', 'request_id');
	assert.ok(TERMINATIONS.includes(l.termination), `termination ${l.termination}`);
	assert.ok(PHASES.includes(l.phase), `phase ${l.phase}`);
}

test('one JSON line per exchange with every field and its type', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ pools: { web: { servers: [{ name: 'a', backend: b }] } }, t });
	const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
	const r1 = await requestJson(s.port, { path: '/echo?x=1&y=two', agent });
	const body = Buffer.alloc(1000, 'b');
	const r2 = await requestJson(s.port, { method: 'POST', path: '/upload', body, agent, headers: { 'Content-Length': body.length, 'X-Request-ID': 'given-id-42' } });
	const r3 = await request(s.port, { path: '/bytes/5000', agent });
	agent.destroy();
	assert.equal(r1.status, 200);
	assert.equal(r2.status, 200);
	assert.equal(r3.status, 200);
	const lines = await s.waitForAccessLog(3);
	await s.stop();
	const all = s.accessLog();
	assert.equal(all.length, 3, `exactly one line per exchange:\n${all.map((x) => JSON.stringify(x)).join('\n')}`);
	for (const l of all) {
		assertShape(l);
		assert.equal(l.termination, 'ok');
		assert.equal(l.phase, 'done');
		assert.equal(l.status, 200);
		assert.equal(l.server, 'web/a');
		assert.equal(l.client, `127.0.0.1:${r1.localPort}`);
		assert.equal(typeof l.connect_ms, 'number');
		assert.equal(typeof l.first_byte_ms, 'number');
		assert.ok(l.first_byte_ms <= l.total_ms, 'first byte before the end');
	}
	const [l1, l2, l3] = lines;
	assert.equal(l1.method, 'GET');
	assert.equal(l1.path, '/echo?x=1&y=two');
	assert.equal(l1.request_id, r1.json.headers['x-request-id'], 'logged id is the forwarded one');
	assert.match(l1.request_id, /^[0-9a-fA-F]{32}$/);
	assert.equal(l2.method, 'POST');
	assert.equal(l2.path, '/upload');
	assert.equal(l2.request_id, 'given-id-42');
	assert.ok(l2.bytes_in >= 1000, `bytes_in counts the body (${l2.bytes_in})`);
	assert.ok(l3.bytes_out >= 5000, `bytes_out counts the body (${l3.bytes_out})`);
	assert.ok(l1.bytes_out >= r1.body.length, 'bytes_out covers the body');
	assert.equal(new Set(all.map((l) => l.session)).size, 1, 'same session for one keep-alive connection');
	assert.equal(new Set(all.map((l) => l.request_id)).size, 3);
});

test('different connections get different session ids', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	for (let i = 0; i < 3; i++) assert.equal((await request(s.port, { path: '/echo' })).status, 200);
	const lines = await s.waitForAccessLog(3);
	assert.equal(new Set(lines.map((l) => `${l.worker}/${l.session}`)).size, 3);
});

test('502 after refused connects: termination connect_failed, phase connect', async (t) => {
	const dead = await freePort();
	const s = await startSluice({ pools: { p: { servers: [{ name: 'dead', address: `127.0.0.1:${dead}` }] } }, t });
	const r = await request(s.port, { path: '/nowhere' });
	assert.equal(r.status, 502);
	const lines = await s.waitForAccessLog(1);
	const l = lines.find((x) => x.path === '/nowhere');
	assertShape(l);
	assert.equal(l.status, 502);
	assert.equal(l.termination, 'connect_failed');
	assert.equal(l.phase, 'connect');
	assert.equal(l.method, 'GET');
});

test('408: method "-", termination client_timeout, phase head, no server', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { client_header: '1s' }, t });
	const r = await rawRequest(s.port, 'GET /partial HTTP/1.1\r\nHost: a', { timeout: 4000 });
	assert.match(r.text, /^HTTP\/1\.[01] 408 /);
	const lines = await s.waitForAccessLog(1);
	const l = lines[0];
	assertShape(l);
	assert.equal(l.status, 408);
	assert.equal(l.termination, 'client_timeout');
	assert.equal(l.phase, 'head');
	assert.equal(l.server, null);
	// No complete request line was parsed... or the partial one was kept.
	assert.ok(l.method === '-' || l.method === 'GET', `method ${l.method}`);
	assert.ok(l.path === '-' || l.path === '/partial', `path ${l.path}`);
});

test('404: termination no_route, no server', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], routes: [{ host: 'only.example', pool: 'p' }], t });
	const r = await request(s.port, { path: '/lost', headers: { Host: 'elsewhere.example' } });
	assert.equal(r.status, 404);
	const lines = await s.waitForAccessLog(1);
	const l = lines.find((x) => x.path === '/lost');
	assertShape(l);
	assert.equal(l.status, 404);
	assert.equal(l.termination, 'no_route');
	assert.equal(l.server, null);
});

test('400: termination bad_request, phase head', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	await rawRequest(s.port, 'POST /smug HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', { timeout: 3000 });
	const [l] = await s.waitForAccessLog(1);
	assertShape(l);
	assert.equal(l.status, 400);
	assert.equal(l.termination, 'bad_request');
	assert.equal(l.phase, 'head');
	assert.equal(l.server, null);
});

test('431 and 414: header_too_large and uri_too_long', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], limits: { max_header_size: '1k', max_uri: '128' }, t });
	await rawRequest(s.port, `GET /big HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(1500)}\r\n\r\n`, { timeout: 3000 });
	await rawRequest(s.port, `GET /${'u'.repeat(300)} HTTP/1.1\r\nHost: a\r\n\r\n`, { timeout: 3000 });
	const lines = await s.waitForAccessLog(2);
	const byStatus = Object.fromEntries(lines.map((l) => [l.status, l]));
	assert.equal(byStatus[431]?.termination, 'header_too_large', JSON.stringify(lines));
	assert.equal(byStatus[414]?.termination, 'uri_too_long', JSON.stringify(lines));
	for (const l of lines) assertShape(l);
});

test('504: termination upstream_timeout, phase response_head, server named', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { response_header: '1s' }, t });
	const r = await request(s.port, { path: '/hang' });
	assert.equal(r.status, 504);
	const lines = await s.waitForAccessLog(1);
	const l = lines.find((x) => x.path === '/hang');
	assertShape(l);
	assert.equal(l.termination, 'upstream_timeout');
	assert.equal(l.phase, 'response_head');
	assert.equal(l.server, 'p/a');
	assert.ok(l.total_ms >= 900, `total_ms ${l.total_ms}`);
});

test('client closing mid-response: termination client_closed', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const c = await RawConn.open(s.port);
	await c.write('GET /bytes/104857600 HTTP/1.1\r\nHost: a\r\n\r\n');
	await c.waitFor((buf) => buf.length > 100000);
	c.destroy();
	const lines = await s.waitForAccessLog((ls) => ls.some((x) => x.path === '/bytes/104857600'), 5000);
	const l = lines.find((x) => x.path === '/bytes/104857600');
	assertShape(l);
	assert.equal(l.termination, 'client_closed');
	assert.equal(l.phase, 'response_body');
	assert.ok(l.bytes_out < 104857600);
});

test('access_log = "-" writes the JSON lines to stdout', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], accessLog: '-', t });
	assert.equal((await request(s.port, { path: '/to-stdout' })).status, 200);
	const lines = await s.waitForAccessLog(1);
	assert.equal(lines[0].path, '/to-stdout');
	assertShape(lines[0]);
});

test('access_log = "off" writes nothing to stdout', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], accessLog: 'off', t });
	assert.equal((await request(s.port, { path: '/quiet' })).status, 200);
	await s.stop();
	assert.doesNotMatch(s.stdout(), /\/quiet/);
});
