// Header rewriting: hop-by-hop fields removed both ways, X-Forwarded-*,
// X-Request-ID, Host kept.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSluice } from './lib/sluice.mjs';
import { readHead, startBackend, startRawServer } from './lib/backend.mjs';
import { rawRequest, requestJson } from './lib/client.mjs';

async function echoVia(t, rawReq) {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const r = await rawRequest(s.port, rawReq, { expectResponses: 1 });
	const [res] = r.responses;
	assert.equal(res?.status, 200, r.text);
	return { json: JSON.parse(res.body.toString()), res, b, s };
}

function rawCount(rawHeaders, name) {
	let n = 0;
	for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === name) n++;
	return n;
}

test('request hop-by-hop headers are not forwarded', async (t) => {
	const { json } = await echoVia(t,
		'GET /echo HTTP/1.1\r\n'
		+ 'Host: hop.test\r\n'
		+ 'Connection: keep-alive, Foo, x-bar\r\n'
		+ 'Foo: secret\r\n'
		+ 'X-Bar: secret2\r\n'
		+ 'Keep-Alive: timeout=99\r\n'
		+ 'TE: trailers\r\n'
		+ 'Trailer: X-Whatever\r\n'
		+ 'Proxy-Authorization: Basic Zm9vOmJhcg==\r\n'
		+ 'Proxy-Connection: keep-alive\r\n'
		+ 'Upgrade: h2c\r\n'
		+ 'X-Keep-Me: kept\r\n'
		+ '\r\n');
	const h = json.headers;
	for (const name of ['foo', 'x-bar', 'keep-alive', 'te', 'trailer', 'proxy-authorization', 'proxy-connection', 'upgrade']) {
		assert.equal(h[name], undefined, `${name} must not be forwarded`);
	}
	assert.doesNotMatch(h.connection || '', /foo|x-bar|upgrade/i, 'Connection does not carry the client options');
	assert.equal(h['x-keep-me'], 'kept', 'end-to-end headers are forwarded');
});

test('Connection: close from the client is not forwarded as the upstream connection option', async (t) => {
	const { json, b } = await echoVia(t, 'GET /echo HTTP/1.1\r\nHost: hop.test\r\nConnection: close, Foo\r\nFoo: x\r\n\r\n');
	assert.equal(json.headers.foo, undefined);
	assert.equal(b.requests.length, 1);
});

test('response hop-by-hop headers are not relayed', async (t) => {
	const raw = await startRawServer(async (sock) => {
		await readHead(sock);
		const body = 'raw body\n';
		sock.end('HTTP/1.1 200 OK\r\n'
			+ 'Content-Type: text/plain\r\n'
			+ `Content-Length: ${body.length}\r\n`
			+ 'Connection: close, X-Hop\r\n'
			+ 'X-Hop: hop-value\r\n'
			+ 'Keep-Alive: timeout=5, max=77\r\n'
			+ 'Proxy-Authenticate: Basic realm="x"\r\n'
			+ 'Proxy-Foo: proxy-value\r\n'
			+ 'Upgrade: h2c\r\n'
			+ 'X-End-To-End: yes\r\n'
			+ '\r\n' + body);
	}, { t });
	const s = await startSluice({ backends: [raw], t });
	const r = await rawRequest(s.port, 'GET /x HTTP/1.1\r\nHost: hop.test\r\n\r\n', { expectResponses: 1 });
	const [res] = r.responses;
	assert.equal(res?.status, 200, r.text);
	assert.equal(res.body.toString(), 'raw body\n');
	assert.equal(res.headers['x-hop'], undefined, 'header named by Connection is removed');
	assert.doesNotMatch(res.headers.connection || '', /x-hop/i);
	assert.doesNotMatch(res.headers['keep-alive'] || '', /max=77/, 'backend Keep-Alive is not relayed');
	assert.equal(res.headers['proxy-authenticate'], undefined);
	assert.equal(res.headers['proxy-foo'], undefined);
	assert.equal(res.headers.upgrade, undefined);
	assert.equal(res.headers['x-end-to-end'], 'yes');
});

// Kept field lines leave as "name: value" CRLF, in their order, whether
// they came in that shape (copied as they are) or not (rewritten), with
// dropped fields between them, also between two copied ones (Q-D and Q-E,
// R-E and R-F), where a run of copied lines must end.
test('kept field lines are forwarded in order, each as "name: value", both ways', async (t) => {
	let head = null;
	const raw = await startRawServer(async (sock) => {
		head = (await readHead(sock)).head;
		sock.end('HTTP/1.1 200 OK\r\n'
			+ 'R-A: 1\r\n'
			+ 'R-B:2\r\n'
			+ 'Connection: close, R-Hop\r\n'
			+ 'R-Hop: x\r\n'
			+ 'R-C: 3  \r\n'
			+ 'R-D:\t 4\r\n'
			+ 'R-E: 5\r\n'
			+ 'R-Hop: y\r\n'
			+ 'R-F: 6\r\n'
			+ 'R-G:\r\n'
			+ 'Content-Length: 2\r\n'
			+ '\r\nok');
	}, { t });
	const s = await startSluice({ backends: [raw], t });
	const r = await rawRequest(s.port, 'GET /x HTTP/1.1\r\n'
		+ 'Host: order.test\r\n'
		+ 'Q-A: 1\r\n'
		+ 'Q-B:  2\r\n'
		+ 'Keep-Alive: timeout=9\r\n'
		+ 'Q-C: 3\t\r\n'
		+ 'Q-D: 4\r\n'
		+ 'TE: trailers\r\n'
		+ 'Q-E: five, 5\r\n'
		+ 'Q-F:\r\n'
		+ '\r\n', { expectResponses: 1 });
	const [res] = r.responses;
	assert.equal(res?.status, 200, r.text);
	const fields = (text, prefix) => text.split('\r\n').filter((l) => l.startsWith(prefix));
	assert.deepEqual(fields(head, 'Q-'), ['Q-A: 1', 'Q-B: 2', 'Q-C: 3', 'Q-D: 4', 'Q-E: five, 5', 'Q-F: ']);
	assert.match(head, /\r\nHost: order\.test\r\nQ-A: 1\r\nQ-B: 2\r\nQ-C: 3\r\nQ-D: 4\r\nQ-E: five, 5\r\nQ-F: \r\n/);
	const resHead = r.text.slice(0, r.text.indexOf('\r\n\r\n') + 2);
	assert.deepEqual(fields(resHead, 'R-'), ['R-A: 1', 'R-B: 2', 'R-C: 3', 'R-D: 4', 'R-E: 5', 'R-F: 6', 'R-G: ']);
	assert.match(resHead, /\r\nR-C: 3\r\nR-D: 4\r\nR-E: 5\r\nR-F: 6\r\nR-G: \r\nContent-Length: 2\r\n/);
});

test('X-Forwarded-For is set to the client address', async (t) => {
	const { json } = await echoVia(t, 'GET /echo HTTP/1.1\r\nHost: xff.test\r\n\r\n');
	assert.equal(json.headers['x-forwarded-for'], '127.0.0.1');
	assert.equal(rawCount(json.rawHeaders, 'x-forwarded-for'), 1);
});

test('X-Forwarded-For is appended to an existing value', async (t) => {
	const { json } = await echoVia(t, 'GET /echo HTTP/1.1\r\nHost: xff.test\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n');
	assert.equal(json.headers['x-forwarded-for'], '1.2.3.4, 127.0.0.1');
	assert.equal(rawCount(json.rawHeaders, 'x-forwarded-for'), 1, 'one X-Forwarded-For field');
});

test('X-Forwarded-Proto is "http"', async (t) => {
	const { json } = await echoVia(t, 'GET /echo HTTP/1.1\r\nHost: xfp.test\r\n\r\n');
	assert.equal(json.headers['x-forwarded-proto'], 'http');
});

test('X-Forwarded-Proto sent by the client is replaced, not trusted', async (t) => {
	const { json } = await echoVia(t, 'GET /echo HTTP/1.1\r\nHost: xfp.test\r\nX-Forwarded-Proto: https\r\n\r\n');
	assert.equal(json.headers['x-forwarded-proto'], 'http');
	assert.equal(rawCount(json.rawHeaders, 'x-forwarded-proto'), 1);
});

test('X-Forwarded-Host is the client Host', async (t) => {
	const { json } = await echoVia(t, 'GET /echo HTTP/1.1\r\nHost: App.Example.org:8443\r\n\r\n');
	assert.equal(json.headers['x-forwarded-host'], 'App.Example.org:8443');
	assert.equal(rawCount(json.rawHeaders, 'x-forwarded-host'), 1);
});

test('Host is forwarded unchanged', async (t) => {
	const { json } = await echoVia(t, 'GET /echo HTTP/1.1\r\nHost: App.Example.org:8443\r\n\r\n');
	assert.equal(json.headers.host, 'App.Example.org:8443');
	assert.equal(rawCount(json.rawHeaders, 'host'), 1);
});

test('X-Request-ID is generated (32 hex) when absent, unique per request', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const ids = new Set();
	for (let i = 0; i < 5; i++) {
		const r = await requestJson(s.port, { path: '/echo' });
		const id = r.json.headers['x-request-id'];
		assert.match(id || '', /^[0-9a-fA-F]{32}$/);
		ids.add(id);
	}
	assert.equal(ids.size, 5);
});

test('X-Request-ID is kept when present', async (t) => {
	const { json } = await echoVia(t, 'GET /echo HTTP/1.1\r\nHost: rid.test\r\nX-Request-ID: abc-123\r\n\r\n');
	assert.equal(json.headers['x-request-id'], 'abc-123');
	assert.equal(rawCount(json.rawHeaders, 'x-request-id'), 1);
});

test('multiple values and header order of end-to-end fields survive', async (t) => {
	const { json } = await echoVia(t,
		'GET /echo HTTP/1.1\r\nHost: multi.test\r\nX-Multi: one\r\nAccept: text/html\r\nX-Multi: two\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n');
	assert.equal(json.headers['x-multi'], 'one, two');
	assert.equal(rawCount(json.rawHeaders, 'x-multi'), 2);
	assert.equal(json.headers.accept, 'text/html');
	assert.match(json.headers.cookie, /a=1.*b=2/);
});
