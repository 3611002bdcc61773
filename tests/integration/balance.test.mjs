// Smooth weighted round-robin (nginx's algorithm) over a pool.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poolOf, startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';
import { requestJson } from './lib/client.mjs';

async function sequence(t, weights, n) {
	const names = weights.map((_, i) => String.fromCharCode(97 + i));
	const backends = [];
	for (const name of names) backends.push(await startBackend({ name, t }));
	const s = await startSluice({ workers: 1, pools: { p: poolOf(backends, { weights }) }, t });
	const seq = [];
	for (let i = 0; i < n; i++) {
		const r = await requestJson(s.port, { path: `/echo?i=${i}` }); // own connection each time
		assert.equal(r.status, 200);
		seq.push(r.json.backend);
	}
	return seq;
}

function counts(seq) {
	const c = {};
	for (const x of seq) c[x] = (c[x] || 0) + 1;
	return c;
}

test('weights 2,1,1 over 80 requests: exactly 40/20/20, period 4 with 2 a, 1 b, 1 c', async (t) => {
	const seq = await sequence(t, [2, 1, 1], 80);
	const str = seq.join('');
	assert.deepEqual(counts(seq), { a: 40, b: 20, c: 20 }, str);
	for (let i = 0; i + 4 < seq.length; i++) {
		assert.equal(seq[i], seq[i + 4], `period 4 at ${i}: ${str}`);
	}
	for (let i = 0; i < seq.length; i += 4) {
		assert.deepEqual(counts(seq.slice(i, i + 4)), { a: 2, b: 1, c: 1 }, `window at ${i}: ${str}`);
	}
});

test('weights 5,1,1: smooth, the light servers are spread between the heavy one', async (t) => {
	// nginx's algorithm gives a a b a c a a; a plain weighted round-robin
	// gives a a a a a b c. Over a period of 7: 5/1/1, and b and c are never
	// adjacent (cyclically).
	const seq = await sequence(t, [5, 1, 1], 28);
	const str = seq.join('');
	assert.deepEqual(counts(seq), { a: 20, b: 4, c: 4 }, str);
	for (let i = 0; i + 7 < seq.length; i++) assert.equal(seq[i], seq[i + 7], `period 7: ${str}`);
	const period = seq.slice(0, 7);
	const ib = period.indexOf('b');
	const ic = period.indexOf('c');
	const dist = Math.min((ib - ic + 7) % 7, (ic - ib + 7) % 7);
	assert.ok(dist >= 2, `b and c not adjacent in ${period.join('')}`);
	let run = 0;
	let maxRun = 0;
	for (const x of [...seq, ...seq]) {
		run = x === 'a' ? run + 1 : 0;
		maxRun = Math.max(maxRun, run);
	}
	assert.ok(maxRun <= 4, `a runs at most 4 in a row (got ${maxRun}): ${str}`);
});

test('equal weights alternate strictly', async (t) => {
	const seq = await sequence(t, [1, 1, 1], 12);
	const str = seq.join('');
	for (let i = 0; i + 3 < seq.length; i++) assert.equal(seq[i], seq[i + 3], str);
	assert.deepEqual(counts(seq.slice(0, 3)), { a: 1, b: 1, c: 1 }, str);
});

test('keep-alive client: each request is balanced, not each connection', async (t) => {
	const { default: http } = await import('node:http');
	const backends = [await startBackend({ name: 'a', t }), await startBackend({ name: 'b', t })];
	const s = await startSluice({ workers: 1, pools: { p: poolOf(backends) }, t });
	const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
	t.after(() => agent.destroy());
	const seq = [];
	for (let i = 0; i < 6; i++) seq.push((await requestJson(s.port, { path: '/echo', agent })).json.backend);
	assert.deepEqual(counts(seq), { a: 3, b: 3 }, seq.join(''));
});
