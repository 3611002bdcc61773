// Large bodies stream through with flat memory: 1 GiB up and down, a
// chunked upload, and a client that stops reading for a while.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { SANITIZERS, sleep, startSluice } from './lib/sluice.mjs';
import { patternSha, patternStream, startBackend } from './lib/backend.mjs';
import { request, requestJson } from './lib/client.mjs';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
// Sanitizer builds move bytes several times slower: smaller transfers there.
const BIG = SANITIZERS ? 256 * MiB : GiB;
const RSS_LIMIT = 64 * MiB;
const T = { timeout: 300000 };

function assertRss(t, s, what) {
	const hwm = s.procStatusBytes('VmHWM');
	if (hwm !== null) t.diagnostic(`${what}: sluice VmHWM ${(hwm / MiB).toFixed(1)} MiB`);
	if (SANITIZERS) return hwm;
	assert.ok(hwm !== null, 'VmHWM readable');
	assert.ok(hwm < RSS_LIMIT, `${what}: sluice VmHWM ${(hwm / MiB).toFixed(1)} MiB >= ${RSS_LIMIT / MiB} MiB`);
	return hwm;
}

async function setup(t) {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], timeouts: { body_idle: '20s', response_header: '60s' }, t });
	return { b, s };
}

test(`upload of ${BIG / MiB} MiB with Content-Length arrives intact, memory flat`, T, async (t) => {
	const { s } = await setup(t);
	const r = await requestJson(s.port, {
		method: 'POST',
		path: '/upload',
		body: patternStream(BIG),
		headers: { 'Content-Length': BIG, 'Content-Type': 'application/octet-stream' },
		timeout: 240000,
	});
	assert.equal(r.status, 200);
	assert.equal(r.json.bodyLength, BIG);
	assert.equal(r.json.sha256, patternSha(BIG));
	assertRss(t, s, 'upload');
});

test(`download of ${BIG / MiB} MiB with Content-Length arrives intact, memory flat`, T, async (t) => {
	const { s } = await setup(t);
	const r = await request(s.port, {
		path: `/bytes/${BIG}`,
		collect: false,
		hash: () => crypto.createHash('sha256'),
		timeout: 240000,
	});
	assert.equal(r.status, 200);
	assert.equal(r.headers['content-length'], String(BIG));
	assert.equal(r.length, BIG);
	assert.equal(r.sha256, patternSha(BIG));
	assertRss(t, s, 'download');
});

test('chunked upload of 256 MiB (no Content-Length) arrives intact, memory flat', T, async (t) => {
	const { s } = await setup(t);
	const n = 256 * MiB;
	const r = await requestJson(s.port, {
		method: 'POST',
		path: '/upload',
		body: patternStream(n),
		headers: { 'Transfer-Encoding': 'chunked' },
		timeout: 240000,
	});
	assert.equal(r.status, 200);
	assert.equal(r.json.bodyLength, n);
	assert.equal(r.json.sha256, patternSha(n));
	assertRss(t, s, 'chunked upload');
});

test('chunked download of 256 MiB arrives intact, memory flat', T, async (t) => {
	const { s } = await setup(t);
	const n = 256 * MiB;
	const r = await request(s.port, {
		path: `/bytes-chunked/${n}`,
		collect: false,
		hash: () => crypto.createHash('sha256'),
		timeout: 240000,
	});
	assert.equal(r.status, 200);
	assert.equal(r.length, n);
	assert.equal(r.sha256, patternSha(n));
	assertRss(t, s, 'chunked download');
});

test('slow reader: a 200 MiB download paused for 2 s keeps memory bounded, then completes', T, async (t) => {
	const { s } = await setup(t);
	const n = 200 * MiB;
	let rssDuringPause = null;
	const r = await request(s.port, {
		path: `/bytes/${n}`,
		collect: false,
		hash: () => crypto.createHash('sha256'),
		timeout: 240000,
		// Nothing reads the body until this returns: the socket fills up.
		onResponse: async () => {
			await sleep(2000);
			rssDuringPause = s.procStatusBytes('VmRSS');
		},
	});
	assert.equal(r.status, 200);
	assert.equal(r.length, n);
	assert.equal(r.sha256, patternSha(n));
	if (!SANITIZERS) {
		assert.ok(rssDuringPause !== null && rssDuringPause < RSS_LIMIT, `VmRSS during the pause: ${rssDuringPause}`);
	}
	assertRss(t, s, 'slow reader');
});

test('slow backend reader: a 200 MiB upload to a backend that pauses keeps memory bounded', T, async (t) => {
	const b = await startBackend({
		name: 'slow',
		t,
		routes: {
			'/slow-upload': async (req, res, rec) => {
				req.pause();
				await sleep(2000);
				rec.rssDuringPause = s.procStatusBytes('VmRSS');
				const h = crypto.createHash('sha256');
				let len = 0;
				req.on('data', (d) => { h.update(d); len += d.length; });
				req.on('end', () => {
					const body = JSON.stringify({ bodyLength: len, sha256: h.digest('hex') });
					res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
					res.end(body);
				});
				req.resume();
			},
		},
	});
	const s = await startSluice({ backends: [b], timeouts: { body_idle: '20s', response_header: '60s' }, t });
	const n = 200 * MiB;
	const r = await requestJson(s.port, {
		method: 'POST',
		path: '/slow-upload',
		body: patternStream(n),
		headers: { 'Content-Length': n },
		timeout: 240000,
	});
	assert.equal(r.status, 200);
	assert.equal(r.json.bodyLength, n);
	assert.equal(r.json.sha256, patternSha(n));
	const rec = b.requestsTo('/slow-upload')[0];
	if (!SANITIZERS) assert.ok(rec.rssDuringPause < RSS_LIMIT, `VmRSS during the pause: ${rec.rssDuringPause}`);
	assertRss(t, s, 'slow backend');
});
