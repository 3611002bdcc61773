// Basic forwarding: methods and body framings both ways, bodiless
// responses, interim responses and HTTP/1.0 clients.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSluice } from './lib/sluice.mjs';
import { CHUNKED_BODY, patternSha, sha256, startBackend } from './lib/backend.mjs';
import { RawConn, rawRequest, request, requestJson } from './lib/client.mjs';

async function setup(t, extra = {}) {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { client_header: '2s' }, t, ...extra });
	return { b, s };
}

test('GET is forwarded and answered', async (t) => {
	const { b, s } = await setup(t);
	const r = await requestJson(s.port, { path: '/echo?x=1&y=2', headers: { 'X-Test': 'yes' } });
	assert.equal(r.status, 200);
	assert.equal(r.json.method, 'GET');
	assert.equal(r.json.url, '/echo?x=1&y=2');
	assert.equal(r.json.headers['x-test'], 'yes');
	assert.equal(b.requests.length, 1);
});

test('POST with Content-Length: body arrives intact', async (t) => {
	const { s } = await setup(t);
	const body = Buffer.alloc(100000, 'xyz');
	const r = await requestJson(s.port, { method: 'POST', path: '/echo', body, headers: { 'Content-Length': body.length } });
	assert.equal(r.status, 200);
	assert.equal(r.json.bodyLength, body.length);
	assert.equal(r.json.sha256, sha256(body));
	assert.equal(r.json.headers['content-length'], String(body.length));
});

test('PUT, DELETE, PATCH and OPTIONS are forwarded with their method', async (t) => {
	const { s } = await setup(t);
	for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
		const r = await requestJson(s.port, { method, path: '/echo', body: 'abc', headers: { 'Content-Length': 3 } });
		assert.equal(r.status, 200, method);
		assert.equal(r.json.method, method);
		assert.equal(r.json.bodyLength, 3);
	}
});

test('chunked request with trailers (raw socket): body and trailer reach the backend', async (t) => {
	const { b, s } = await setup(t);
	const req = 'POST /echo HTTP/1.1\r\nHost: proxy.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\nConnection: close\r\n\r\n'
		+ '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n';
	const r = await rawRequest(s.port, req, { expectResponses: 1 });
	const [res] = r.responses;
	assert.equal(res?.status, 200, r.text);
	const json = JSON.parse(res.body.toString());
	assert.equal(json.bodyLength, 11);
	assert.equal(json.body, 'hello world');
	assert.equal(json.trailers['x-trailer'], 'yes');
	assert.equal(b.requests.length, 1);
});

test('chunked response with trailer is relayed with its trailer', async (t) => {
	const { s } = await setup(t);
	const r = await rawRequest(s.port, 'GET /chunked HTTP/1.1\r\nHost: proxy.test\r\nTE: trailers\r\n\r\n', { expectResponses: 1 });
	const [res] = r.responses;
	assert.equal(res?.status, 200, r.text);
	assert.equal(res.body.toString(), CHUNKED_BODY);
	assert.ok(res.chunked, 'relayed chunked to an HTTP/1.1 client');
	assert.equal(res.trailers['x-checksum'], sha256(CHUNKED_BODY));
});

test('chunked response via node:http: body and trailers', async (t) => {
	const { s } = await setup(t);
	const r = await request(s.port, { path: '/chunked', headers: { TE: 'trailers' } });
	assert.equal(r.status, 200);
	assert.equal(r.body.toString(), CHUNKED_BODY);
	assert.equal(r.trailers['x-checksum'], sha256(CHUNKED_BODY));
});

test('close-delimited response reaches the client intact', async (t) => {
	const { s } = await setup(t);
	const n = 300000;
	const r = await request(s.port, { path: `/close-delimited/${n}` });
	assert.equal(r.status, 200);
	assert.equal(r.body.length, n);
	assert.equal(sha256(r.body), patternSha(n));
});

test('close-delimited response on a raw socket: framed or closed, bytes exact', async (t) => {
	const { s } = await setup(t);
	const n = 50000;
	const r = await rawRequest(s.port, `GET /close-delimited/${n} HTTP/1.1\r\nHost: proxy.test\r\n\r\n`, { timeout: 5000 });
	const [res] = r.responses;
	assert.equal(res?.status, 200, r.text.slice(0, 500));
	assert.ok(res.complete, 'complete body (chunked, or close-delimited and closed)');
	assert.equal(res.body.length, n);
	assert.equal(sha256(res.body), patternSha(n));
});

test('HEAD: response has no body even though the backend sends Content-Length', async (t) => {
	const { s } = await setup(t);
	const r = await rawRequest(s.port,
		'HEAD /bytes/1000 HTTP/1.1\r\nHost: proxy.test\r\n\r\n'
		+ 'GET /echo?after-head HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n',
		{ methods: ['HEAD', 'GET'], timeout: 5000 });
	const [head, next] = r.responses;
	assert.equal(head?.status, 200, r.text);
	assert.equal(head.headers['content-length'], '1000');
	assert.equal(head.body.length, 0);
	assert.equal(next?.status, 200, `second response parses right after the HEAD one:\n${r.text}`);
	assert.equal(JSON.parse(next.body.toString()).url, '/echo?after-head');
});

test('204 and 304 carry no body and the connection goes on', async (t) => {
	const { s } = await setup(t);
	const r = await rawRequest(s.port,
		'GET /status/204 HTTP/1.1\r\nHost: proxy.test\r\n\r\n'
		+ 'GET /status/304 HTTP/1.1\r\nHost: proxy.test\r\n\r\n'
		+ 'GET /echo?third HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n',
		{ timeout: 5000 });
	const st = r.responses.map((x) => x.status);
	assert.deepEqual(st, [204, 304, 200], r.text);
	assert.equal(r.responses[0].body.length, 0);
	assert.equal(r.responses[1].body.length, 0);
	assert.equal(r.responses[0].headers['transfer-encoding'], undefined);
	assert.equal(JSON.parse(r.responses[2].body.toString()).url, '/echo?third');
});

test('status codes are relayed (201, 404, 500, 503) without rewriting', async (t) => {
	const { s } = await setup(t);
	for (const code of [201, 404, 500, 503]) {
		const r = await request(s.port, { path: `/status/${code}` });
		assert.equal(r.status, code);
		assert.equal(r.body.toString(), `status ${code}\n`);
		assert.equal(r.headers['x-backend'], 'a');
	}
});

test('103 Early Hints is relayed before the 200', async (t) => {
	const { s } = await setup(t);
	const r = await request(s.port, { path: '/early-hints' });
	assert.equal(r.status, 200);
	assert.equal(r.informational.length, 1, 'one interim response');
	assert.equal(r.informational[0].status, 103);
	assert.match(r.informational[0].headers.link, /style\.css/);
});

test('Expect: 100-continue: 100 arrives before the body is sent, then 200', async (t) => {
	const { s } = await setup(t);
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('POST /echo HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
	await c.waitFor(/^HTTP\/1\.1 100 Continue\r\n(?:.*\r\n)*\r\n/, 3000);
	await c.write('hello');
	const [res] = await c.waitResponses(1, { timeout: 5000 });
	assert.equal(res.status, 200);
	const json = JSON.parse(res.body.toString());
	assert.equal(json.bodyLength, 5);
	assert.equal(json.body, 'hello');
});

test('HTTP/1.0 client gets a chunked backend body de-chunked, bytes exact', async (t) => {
	const { s } = await setup(t);
	const r = await rawRequest(s.port, 'GET /chunked HTTP/1.0\r\nHost: proxy.test\r\n\r\n', { timeout: 5000 });
	assert.ok(r.closed, 'connection closed after the HTTP/1.0 exchange');
	const [res] = r.responses;
	assert.equal(res?.status, 200, r.text);
	assert.match(res.version, /^1\.[01]$/);
	assert.equal(res.headers['transfer-encoding'], undefined, 'no chunked coding towards an HTTP/1.0 client');
	assert.equal(res.body.toString(), CHUNKED_BODY);
});

test('HTTP/1.0 client: large chunked body de-chunked intact', async (t) => {
	const { s } = await setup(t);
	const n = 1000000;
	const r = await rawRequest(s.port, `GET /bytes-chunked/${n} HTTP/1.0\r\nHost: proxy.test\r\n\r\n`, { timeout: 10000 });
	assert.ok(r.closed);
	const [res] = r.responses;
	assert.equal(res?.status, 200, r.text.slice(0, 300));
	assert.equal(res.headers['transfer-encoding'], undefined);
	assert.equal(res.body.length, n);
	assert.equal(sha256(res.body), patternSha(n));
});

// The upstream request is HTTP/1.1 and needs a Host: the address the client
// connected to (RFC 9112 3.3), not an empty one, which nginx refuses with a
// 400 and a closed connection.
test('HTTP/1.0 client without Host is accepted', async (t) => {
	const { s } = await setup(t);
	const r = await rawRequest(s.port, 'GET /echo?v10 HTTP/1.0\r\n\r\n', { timeout: 5000 });
	const [res] = r.responses;
	assert.equal(res?.status, 200, r.text);
	const json = JSON.parse(res.body.toString());
	assert.equal(json.url, '/echo?v10');
	assert.equal(json.headers.host, `127.0.0.1:${s.port}`);
	assert.equal(json.headers['x-forwarded-host'], undefined);
});

test('HTTP/1.0 without Host on a wildcard listener: Host is the address connected to', async (t) => {
	const { s } = await setup(t, { listen: [{ name: 'any', host: '0.0.0.0' }] });
	const r = await rawRequest(s.port, 'GET /echo HTTP/1.0\r\n\r\n', { timeout: 5000 });
	const [res] = r.responses;
	assert.equal(res?.status, 200, r.text);
	assert.equal(JSON.parse(res.body.toString()).headers.host, `127.0.0.1:${s.port}`);
});

// A client that sends a complete request and then shuts its write side
// (shutdown(SHUT_WR)) still wants the answer: the FIN may arrive in the same
// read as the body, and must not be taken for an abort.
test('complete POST then half-close: the 200 still arrives (20 rounds)', async (t) => {
	// keepalive = 0: every round connects afresh, so the FIN arrives while
	// the body still waits for the upstream connection.
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ pools: { p: { keepalive: 0, servers: [{ name: 'a', backend: b }] } }, t });
	for (let i = 0; i < 20; i++) {
		const c = await RawConn.open(s.port);
		t.after(() => c.destroy());
		await c.write(`POST /echo?i=${i} HTTP/1.1\r\nHost: half.test\r\nContent-Length: 5\r\n\r\nhello`);
		c.end();
		let rs;
		try {
			rs = await c.waitResponses(1, { timeout: 3000 });
		} catch (e) {
			assert.fail(`round ${i}: no complete response: ${e.message}`);
		}
		assert.equal(rs[0].status, 200, `round ${i}: ${c.text.slice(0, 200)}`);
		const j = JSON.parse(rs[0].body.toString());
		assert.equal(j.url, `/echo?i=${i}`);
		assert.equal(j.body, 'hello', `round ${i}: the backend got the whole body`);
		assert.ok(await c.waitClose(2000), `round ${i}: closed after the answer`);
		c.destroy();
	}
	assert.equal(b.requests.length, 20);
	const lines = await s.waitForAccessLog(20);
	assert.ok(lines.every((x) => x.status === 200 && x.termination === 'ok'), JSON.stringify(lines.map((x) => [x.status, x.termination])));
});

test('POST cut short by a half-close: no 200, connection closed, log says client_closed', async (t) => {
	const { b, s } = await setup(t);
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('POST /echo HTTP/1.1\r\nHost: half.test\r\nContent-Length: 10\r\n\r\nhello');
	c.end();
	assert.ok(await c.waitClose(3000), `closed; received:\n${c.text}`);
	assert.doesNotMatch(c.text, /^HTTP\/1\.1 2/, 'no success answer');
	const lines = await s.waitForAccessLog((l) => l.some((x) => x.path === '/echo'));
	const line = lines.find((x) => x.path === '/echo');
	assert.equal(line.termination, 'client_closed');
	assert.ok(['connect', 'request'].includes(line.phase), line.phase);
	assert.ok(b.requests.every((r) => !r.complete), 'the backend never got a complete body');
});
