// Strict request parsing: malformed or ambiguous heads get an error answer
// and a closed connection and are never forwarded; malformed chunked
// bodies never let a smuggled request through; size limits and the header
// timeout.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SLOW, sleep, startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';
import { RawConn, rawRequest } from './lib/client.mjs';

const H = 'Host: strict.test\r\n';

// [name, request bytes, accepted status codes]
const HEAD_CASES = [
	['Content-Length with Transfer-Encoding', `POST /echo HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, [400]],
	['two Content-Length fields', `POST /echo HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, [400]],
	['two different Content-Length fields', `POST /echo HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, [400]],
	['Content-Length: 1, 1', `POST /echo HTTP/1.1\r\n${H}Content-Length: 1, 1\r\n\r\nx`, [400]],
	['Content-Length: abc', `POST /echo HTTP/1.1\r\n${H}Content-Length: abc\r\n\r\n`, [400]],
	['Content-Length: -1', `POST /echo HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, [400]],
	['Content-Length: +5', `POST /echo HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`, [400]],
	['Content-Length overflowing 64 bits', `POST /echo HTTP/1.1\r\n${H}Content-Length: 99999999999999999999999\r\n\r\n`, [400]],
	['Transfer-Encoding: gzip, chunked', `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, [400, 501]],
	['Transfer-Encoding: chunked, gzip', `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`, [400, 501]],
	['Transfer-Encoding: gzip (not chunked last)', `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, [400, 501]],
	['Transfer-Encoding: chunked, chunked', `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`, [400]],
	['Transfer-Encoding: chunked in two fields', `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, [400]],
	['Transfer-Encoding on HTTP/1.0', `POST /echo HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [400]],
	['obs-fold', `GET /echo HTTP/1.1\r\n${H}X-Fold: a\r\n b\r\n\r\n`, [400]],
	['bare LF inside the header block', `GET /echo HTTP/1.1\r\n${H}X-A: b\nX-B: c\r\n\r\n`, [400]],
	['bare LF line terminators', 'GET /echo HTTP/1.1\nHost: strict.test\n\n', [400]],
	['NUL in a header value', `GET /echo HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n`, [400]],
	['control character in a header name', `GET /echo HTTP/1.1\r\n${H}X\x01A: b\r\n\r\n`, [400]],
	['space before the colon', `GET /echo HTTP/1.1\r\n${H}X-A : b\r\n\r\n`, [400]],
	['HTTP/1.1 without Host', 'GET /echo HTTP/1.1\r\nX-A: b\r\n\r\n', [400]],
	['two Host fields', `GET /echo HTTP/1.1\r\n${H}Host: other.test\r\n\r\n`, [400]],
	['HTTP/2.0 version', `GET /echo HTTP/2.0\r\n${H}\r\n`, [400, 505]],
	['garbage version', `GET /echo HTTP/1.x\r\n${H}\r\n`, [400]],
	['invalid method character', `G(T /echo HTTP/1.1\r\n${H}\r\n`, [400]],
	['no request-target', `GET HTTP/1.1\r\n${H}\r\n`, [400]],
];

async function setup(t, extra = {}) {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { client_header: '5s' }, t, ...extra });
	return { b, s };
}

function assertErrorAnswer(r, codes) {
	assert.ok(!r.timedOut, `no answer and no close within the timeout; received:\n${r.text}`);
	const [res] = r.responses;
	assert.ok(res && res.status, `an error response before the close; received:\n${JSON.stringify(r.text)}`);
	assert.ok(codes.includes(res.status), `status ${res.status}, expected ${codes}`);
	assert.match(res.headers.connection || '', /close/i, 'Connection: close');
	assert.ok(r.closed, 'connection closed');
	assert.equal(r.responses.filter((x) => x.status).length, 1, 'exactly one response');
}

for (const [name, req, codes] of HEAD_CASES) {
	test(`rejects ${name} -> ${codes.join('/')}, closes, forwards nothing`, async (t) => {
		const { b, s } = await setup(t);
		const r = await rawRequest(s.port, req, { timeout: 3000 });
		assertErrorAnswer(r, codes);
		await sleep(100);
		assert.equal(b.requests.length, 0, `backend received ${JSON.stringify(b.requests.map((x) => x.url))}`);
	});
}

// Body errors: the head is valid, so it may already have gone upstream.
// What matters: the client never gets a 2xx, the connection ends, and the
// request smuggled after the broken chunk never reaches the backend.
const SMUGGLED = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
const CHUNK_HEAD = `POST /upload HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`;
const BODY_CASES = [
	['bad chunk size "zz"', `${CHUNK_HEAD}zz\r\nhello\r\n0\r\n\r\n${SMUGGLED}`],
	['chunk size overflow', `${CHUNK_HEAD}ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n${SMUGGLED}`],
	['chunk size with 2^64 wrap to 5', `${CHUNK_HEAD}10000000000000005\r\nhello\r\n0\r\n\r\n${SMUGGLED}`],
	['bad chunk extension ";=x"', `${CHUNK_HEAD}5;=x\r\nhello\r\n0\r\n\r\n${SMUGGLED}`],
	['chunk data not followed by CRLF', `${CHUNK_HEAD}5\r\nhelloXX\r\n0\r\n\r\n${SMUGGLED}`],
	['chunk size with a bare LF', `${CHUNK_HEAD}5\nhello\r\n0\r\n\r\n${SMUGGLED}`],
	['negative chunk size', `${CHUNK_HEAD}-5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`],
	['chunk size with leading space', `${CHUNK_HEAD} 5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`],
	['bad trailer field (no colon)', `${CHUNK_HEAD}5\r\nhello\r\n0\r\nnot a field\r\n\r\n${SMUGGLED}`],
];

for (const [name, req] of BODY_CASES) {
	test(`body error: ${name} -> no 2xx, connection ends, nothing smuggled`, async (t) => {
		const { b, s } = await setup(t, { timeouts: { client_header: '5s', body_idle: '2s' } });
		const r = await rawRequest(s.port, req, { timeout: 4000 });
		assert.ok(r.closed, `connection closed; received:\n${r.text}`);
		const statuses = r.responses.filter((x) => x.status).map((x) => x.status);
		assert.ok(statuses.every((st) => st >= 400), `no success answer: ${statuses}`);
		await sleep(150);
		assert.equal(b.requestsTo('/smuggled').length, 0, 'smuggled request reached the backend');
		const up = b.requestsTo('/upload');
		assert.ok(up.every((x) => !x.complete || x.bodyLength <= 5), 'no complete bogus body upstream');
	});
}

test('a valid chunked request followed by a pipelined one: both answered (control)', async (t) => {
	const { b, s } = await setup(t);
	const r = await rawRequest(s.port, `${CHUNK_HEAD}5\r\nhello\r\n0\r\n\r\nGET /echo?second HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { timeout: 4000 });
	assert.deepEqual(r.responses.map((x) => x.status), [200, 200], r.text);
	assert.equal(b.requests.length, 2);
	assert.equal(b.requestsTo('/upload')[0].bodyLength, 5);
});

test('head over max_header_size -> 431 and close', async (t) => {
	const { b, s } = await setup(t, { limits: { max_header_size: '1k', max_uri: '512' } });
	const r = await rawRequest(s.port, `GET /echo HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(2000)}\r\n\r\n`, { timeout: 3000 });
	assertErrorAnswer(r, [431]);
	await sleep(100);
	assert.equal(b.requests.length, 0);
});

test('head just under max_header_size is accepted', async (t) => {
	const { b, s } = await setup(t, { limits: { max_header_size: '1k', max_uri: '512' } });
	const start = `GET /echo HTTP/1.1\r\n${H}Connection: close\r\nX-Big: `;
	const pad = 1024 - start.length - 4 - 16; // leave room for CRLFs
	const r = await rawRequest(s.port, `${start}${'a'.repeat(pad)}\r\n\r\n`, { timeout: 3000 });
	assert.equal(r.responses[0]?.status, 200, r.text.slice(0, 300));
	assert.equal(b.requests.length, 1);
});

test('more than max_headers fields -> 431 and close', async (t) => {
	const { b, s } = await setup(t, { limits: { max_headers: 10 } });
	let hdrs = '';
	for (let i = 0; i < 20; i++) hdrs += `X-H${i}: v\r\n`;
	const r = await rawRequest(s.port, `GET /echo HTTP/1.1\r\n${H}${hdrs}\r\n`, { timeout: 3000 });
	assertErrorAnswer(r, [431]);
	await sleep(100);
	assert.equal(b.requests.length, 0);
});

test('URI over max_uri -> 414 and close', async (t) => {
	const { b, s } = await setup(t, { limits: { max_uri: 256 } });
	const r = await rawRequest(s.port, `GET /echo?${'q'.repeat(1000)} HTTP/1.1\r\n${H}\r\n`, { timeout: 3000 });
	assertErrorAnswer(r, [414]);
	await sleep(100);
	assert.equal(b.requests.length, 0);
});

test('head not finished within client_header -> 408 and close', async (t) => {
	const { b, s } = await setup(t, { timeouts: { client_header: '1s' } });
	const t0 = Date.now();
	const r = await rawRequest(s.port, `GET /echo HTTP/1.1\r\n${H}`, { timeout: 4000 });
	const dt = Date.now() - t0;
	assertErrorAnswer(r, [408]);
	assert.ok(dt >= 900, `not before client_header (${dt} ms)`);
	assert.ok(dt <= 2500 * SLOW, `soon after client_header (${dt} ms)`);
	assert.equal(b.requests.length, 0);
});

test('a head trickling in byte by byte still gets 408 after client_header', async (t) => {
	const { b, s } = await setup(t, { timeouts: { client_header: '1s' } });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	const t0 = Date.now();
	const text = `GET /echo HTTP/1.1\r\n${H}X-Slow: ${'z'.repeat(100)}\r\n\r\n`;
	for (let i = 0; i < text.length && !c.closed; i++) {
		await c.write(text[i]);
		await sleep(50);
		if (Date.now() - t0 > 4000) break;
	}
	assert.ok(await c.waitClose(3000), 'closed');
	const dt = c.closedAt - t0;
	assert.ok(dt <= 2500 * SLOW, `closed ${dt} ms after the first byte`);
	assert.match(c.text, /^HTTP\/1\.[01] 408 /);
	assert.equal(b.requests.length, 0);
});

test('a connection that sends nothing is closed after client_header', async (t) => {
	const { s } = await setup(t, { timeouts: { client_header: '1s' } });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	const t0 = Date.now();
	assert.ok(await c.waitClose(4000), 'closed');
	const dt = Date.now() - t0;
	assert.ok(dt >= 900 && dt <= 2500 * SLOW, `${dt} ms`);
	if (c.length) assert.match(c.text, /^HTTP\/1\.[01] 408 /);
});

test('error answers carry a short text/plain body', async (t) => {
	const { s } = await setup(t);
	const r = await rawRequest(s.port, `GET /echo HTTP/1.1\r\n${H}Host: again.test\r\n\r\n`, { timeout: 3000 });
	const [res] = r.responses;
	assert.equal(res?.status, 400, r.text);
	assert.match(res.headers['content-type'] || '', /^text\/plain/);
	assert.ok(res.body.length > 0 && res.body.length < 512);
	assert.match(res.body.toString(), /400/);
});

// sluice is not a forward proxy: CONNECT and authority-form targets are
// refused, not routed as "/" and forwarded.
test('CONNECT host:443 -> 501, closes, forwards nothing', async (t) => {
	const { b, s } = await setup(t);
	const r = await rawRequest(s.port, 'CONNECT public.example:443 HTTP/1.1\r\nHost: public.example:443\r\n\r\n', { timeout: 3000 });
	assertErrorAnswer(r, [501]);
	await sleep(100);
	assert.equal(b.connections, 0, 'no upstream connection');
	assert.equal(b.requests.length, 0);
	const lines = await s.waitForAccessLog(1);
	assert.equal(lines[0].status, 501);
	assert.equal(lines[0].termination, 'not_implemented');
	assert.equal(lines[0].server, null);
});

test('CONNECT with an IP authority and over HTTP/1.0 -> 501 too', async (t) => {
	const { b, s } = await setup(t);
	for (const req of ['CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n', 'CONNECT public.example:443 HTTP/1.0\r\n\r\n']) {
		const r = await rawRequest(s.port, req, { timeout: 3000 });
		assertErrorAnswer(r, [501]);
	}
	await sleep(100);
	assert.equal(b.connections, 0, 'no upstream connection');
});

test('authority-form target with GET/OPTIONS/POST -> 400/501, closes, forwards nothing', async (t) => {
	const { b, s } = await setup(t);
	for (const m of ['GET', 'OPTIONS', 'POST']) {
		const r = await rawRequest(s.port, `${m} public.example:443 HTTP/1.1\r\nHost: public.example\r\nContent-Length: 0\r\n\r\n`, { timeout: 3000 });
		assertErrorAnswer(r, [400, 501]);
	}
	await sleep(100);
	assert.equal(b.connections, 0, 'no upstream connection');
});

// Absolute-form targets that cannot be rewritten to origin-form.
const BAD_ABSOLUTE = [
	['a scheme other than http(s) (ftp://x/y)', 'GET ftp://x/y HTTP/1.1\r\nHost: x\r\n\r\n'],
	['a query right after the authority (http://h?q)', 'GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n'],
	['userinfo in the authority (http://u@h/x)', 'GET http://u@strict.test/x HTTP/1.1\r\nHost: strict.test\r\n\r\n'],
	['an empty authority (http:///x)', 'GET http:///x HTTP/1.1\r\nHost: strict.test\r\n\r\n'],
];

for (const [name, req] of BAD_ABSOLUTE) {
	test(`absolute-form target with ${name} -> 400, closes, forwards nothing`, async (t) => {
		const { b, s } = await setup(t);
		const r = await rawRequest(s.port, req, { timeout: 3000 });
		assertErrorAnswer(r, [400]);
		await sleep(100);
		assert.equal(b.connections, 0, `backend received ${JSON.stringify(b.requests.map((x) => x.url))}`);
		const lines = await s.waitForAccessLog(1);
		assert.equal(lines[0].termination, 'bad_request');
	});
}
