// The balancers other than round-robin (balance.test.mjs) through the real
// binary: leastconn with held requests and WebSocket tunnels, hash on a
// header, a cookie, a query parameter and the client address (with its
// round-robin fallback and its retries), random2's spread and its
// preference for the less loaded server, and the directives' errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { buildConfig, checkConfig, poolOf, sleep, SLOW, startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';
import { request, requestJson } from './lib/client.mjs';
import { openWs, startWsBackend } from './lib/ws.mjs';

/**
 * sluice in front of backends (pool "p", server names = backend names),
 * with the pool directives in lines ("balance = hash", ...). One worker by
 * default: an exchange then ends (and stops counting) before the next
 * request is read, so sequences of short requests are exact.
 */
function sluiceWith(t, backends, lines, { weights, workers = 1 } = {}) {
	const opts = { workers, pools: { p: poolOf(backends, { weights }) } };
	return startSluice({
		t,
		config: (ctx) => {
			const text = buildConfig(opts, ctx);
			const out = text.replace('pool "p" {\n', `pool "p" {\n${lines.map((l) => `\t${l}\n`).join('')}`);
			assert.notEqual(out, text);
			return out;
		},
	});
}

/** Backends a, b, ... whose /hold requests wait in .held until released. */
async function holdingBackends(t, names) {
	const out = [];
	for (const name of names) {
		const b = await startBackend({
			name,
			t,
			routes: { '/hold': (req, res, rec, be) => { be.held.push(res); } },
		});
		b.held = [];
		b.release = () => {
			for (const res of b.held.splice(0)) res.end('released\n');
		};
		out.push(b);
	}
	return out;
}

async function until(pred, what, timeout = 5000) {
	const end = Date.now() + timeout * SLOW;
	while (!pred()) {
		if (Date.now() > end) throw new Error(`${what} did not happen within ${timeout * SLOW} ms`);
		await sleep(10);
	}
}

function counts(seq) {
	const c = {};
	for (const x of seq) c[x] = (c[x] || 0) + 1;
	return c;
}

/** n sequential requests (own connection each); the backends that answered. */
async function backendsOf(port, n, opts = () => ({})) {
	const seq = [];
	for (let i = 0; i < n; i++) {
		const r = await requestJson(port, { path: `/echo?i=${i}`, ...opts(i) });
		assert.equal(r.status, 200, r.body.toString());
		seq.push(r.json.backend);
	}
	return seq;
}

/* ---------- leastconn ---------- */

test('leastconn: requests held on one server send the next ones to the other; released, they alternate', async (t) => {
	const [a, b] = await holdingBackends(t, ['a', 'b']);
	const s = await sluiceWith(t, [a, b], ['balance = leastconn']);
	const held1 = request(s.port, { path: '/hold' });
	await until(() => a.held.length + b.held.length === 1, 'first held request');
	const [busy, idle] = a.held.length ? ['a', 'b'] : ['b', 'a'];
	// Idle servers tie; the first of them takes the first request.
	assert.equal(busy, 'a');
	assert.deepEqual(counts(await backendsOf(s.port, 10)), { [idle]: 10 });

	// A second held request goes to the idle server: one each now.
	const held2 = request(s.port, { path: '/hold' });
	await until(() => a.held.length === 1 && b.held.length === 1, 'second held request on the other server');
	const seq = await backendsOf(s.port, 10);
	assert.deepEqual(counts(seq), { a: 5, b: 5 }, seq.join(''));

	a.release();
	b.release();
	assert.equal((await held1).status, 200);
	assert.equal((await held2).status, 200);
	await s.waitForAccessLog((l) => l.filter((x) => x.path === '/hold').length === 2);
	const after = await backendsOf(s.port, 8);
	assert.deepEqual(counts(after), { a: 4, b: 4 }, after.join(''));
	for (let i = 1; i < after.length; i++) assert.notEqual(after[i], after[i - 1], after.join(''));
});

test('leastconn: weights scale the load, held requests pile up 3 to 1 across two workers', async (t) => {
	const [a, b] = await holdingBackends(t, ['a', 'b']);
	const s = await sluiceWith(t, [a, b], ['balance = leastconn'], { weights: [3, 1], workers: 2 });
	const held = [];
	for (let i = 0; i < 8; i++) {
		held.push(request(s.port, { path: '/hold' }));
		await until(() => a.held.length + b.held.length === i + 1, `held request ${i + 1}`);
	}
	assert.equal(a.held.length, 6);
	assert.equal(b.held.length, 2);
	a.release();
	b.release();
	for (const h of held) assert.equal((await h).status, 200);
});

/** n plain requests on their own connections: how many each backend got, by name. */
async function plainTo(port, backends, n) {
	const before = Object.fromEntries(Object.entries(backends).map(([k, be]) => [k, be.requests.length]));
	for (let i = 0; i < n; i++) assert.equal((await request(port, { path: '/plain' })).status, 200);
	return Object.fromEntries(Object.entries(backends).map(([k, be]) => [k, be.requests.length - before[k]]));
}

test('leastconn: open WebSocket tunnels count; new requests go where fewer are open', async (t) => {
	const a = await startWsBackend({ name: 'a', t });
	const b = await startWsBackend({ name: 'b', t });
	const s = await sluiceWith(t, [a, b], ['balance = leastconn']);
	const url = `ws://127.0.0.1:${s.port}/ws`;
	const total = () => a.upgrades.length + b.upgrades.length;
	const plain = (n) => plainTo(s.port, { a, b }, n);

	const ws1 = await openWs(url, { t });
	assert.equal(a.upgrades.length, 1);
	// a carries a tunnel: plain requests go to b for as long as it is open.
	assert.deepEqual(await plain(6), { a: 0, b: 6 });

	const ws2 = await openWs(url, { t });
	assert.equal(b.upgrades.length, 1);
	const ws3 = await openWs(url, { t });
	const ws4 = await openWs(url, { t });
	assert.equal(total(), 4);
	assert.equal(a.upgrades.length, 2);
	assert.equal(b.upgrades.length, 2);

	// a's two tunnels end: a is the least loaded now.
	for (const c of a.conns) c.close(1000, 'bye');
	await s.waitForAccessLog((l) => l.filter((x) => x.status === 101).length === 2);
	assert.deepEqual(await plain(4), { a: 4, b: 0 });
	for (const ws of [ws1, ws2, ws3, ws4]) ws.terminate();
});

test('leastconn: tunnels opened before a reload still count after it, until they close', async (t) => {
	const a = await startWsBackend({ name: 'a', t });
	const b = await startWsBackend({ name: 'b', t });
	const s = await sluiceWith(t, [a, b], ['balance = leastconn']);
	const url = `ws://127.0.0.1:${s.port}/ws`;
	const plain = (n) => plainTo(s.port, { a, b }, n);
	const ws1 = await openWs(url, { t });
	assert.equal(a.upgrades.length, 1);

	// A new generation (same pool, servers and addresses): a's tunnel is
	// still there, so new requests go to b.
	await s.reload((text) => text.replace(/^log_level = \w+/m, 'log_level = debug'));
	assert.deepEqual(await plain(6), { a: 0, b: 6 });
	// The tunnel, of the old generation, closes: the new one sees it go.
	ws1.close(1000, 'bye');
	await s.waitForAccessLog((l) => l.filter((x) => x.status === 101).length === 1);
	const after = await plain(4);
	assert.deepEqual(after, { a: 2, b: 2 });
	// A server moved to another address starts with no load: the tunnel
	// to its old address does not count for the new one.
	const ws2 = await openWs(url, { t });
	const [busy, idle] = a.upgrades.length === 2 ? [a, b] : [b, a];
	const moved = await startWsBackend({ name: busy.name, t });
	await s.reload((text) => text.replace(`127.0.0.1:${busy.port}`, `127.0.0.1:${moved.port}`));
	assert.deepEqual(await plainTo(s.port, { moved, idle }, 4), { moved: 2, idle: 2 });
	ws2.terminate();
});

/* ---------- hash ---------- */

/** For each key, the set of backends that answered its requests. */
async function keyMap(port, keys, rounds, optsFor) {
	const map = new Map();
	for (let r = 0; r < rounds; r++) {
		for (const k of keys) {
			const res = await requestJson(port, optsFor(k, r));
			assert.equal(res.status, 200, res.body.toString());
			if (!map.has(k)) map.set(k, new Set());
			map.get(k).add(res.json.backend);
		}
	}
	return map;
}

/** Every key always went to one backend; the keys spread over all of them. */
function assertConsistentSpread(map, names, minEach) {
	const per = {};
	for (const [k, set] of map) {
		assert.equal(set.size, 1, `key ${k} went to ${[...set].join(', ')}`);
		const [name] = set;
		per[name] = (per[name] || 0) + 1;
	}
	for (const n of names) assert.ok((per[n] || 0) >= minEach, `backend ${n} got ${per[n] || 0} keys: ${JSON.stringify(per)}`);
	return per;
}

const users = Array.from({ length: 60 }, (_, i) => `user-${i}`);

test('hash on a header: same value, same backend; values spread; no header: round-robin', async (t) => {
	const backends = [];
	for (const name of ['a', 'b', 'c']) backends.push(await startBackend({ name, t }));
	const s = await sluiceWith(t, backends, ['balance = hash', 'hash_key = "header:X-User"']);
	const map = await keyMap(s.port, users, 3, (k, r) => ({ path: `/echo?r=${r}`, headers: { 'x-user': k } }));
	assertConsistentSpread(map, ['a', 'b', 'c'], 8);
	// The header name is matched without regard to case, the value as sent.
	const again = await keyMap(s.port, users.slice(0, 10), 1, (k) => ({ path: '/echo', headers: { 'X-USER': k } }));
	for (const [k, set] of again) assert.deepEqual([...set], [...map.get(k)], k);

	const seq = await backendsOf(s.port, 6);
	assert.deepEqual(counts(seq), { a: 2, b: 2, c: 2 }, seq.join(''));
	const empty = await backendsOf(s.port, 3, () => ({ headers: { 'x-user': '' } }));
	assert.deepEqual(counts(empty), { a: 1, b: 1, c: 1 }, empty.join(''));
});

test('hash: a key whose server refuses connections is retried on its next server, the others stay', async (t) => {
	const backends = [];
	for (const name of ['a', 'b', 'c']) backends.push(await startBackend({ name, t }));
	const s = await sluiceWith(t, backends, ['balance = hash', 'hash_key = "header:X-User"', 'retries = 2']);
	const opts = (k) => ({ path: '/echo', headers: { 'x-user': k } });
	const before = await keyMap(s.port, users, 1, opts);
	await backends[1].close();
	const after = await keyMap(s.port, users, 2, opts);
	let moved = 0;
	for (const k of users) {
		const [was] = before.get(k);
		const now = [...after.get(k)];
		assert.equal(now.length, 1, `${k}: ${now}`);
		if (was === 'b') {
			moved++;
			assert.notEqual(now[0], 'b');
		} else {
			assert.equal(now[0], was, `${k} moved from ${was} to ${now[0]}`);
		}
	}
	assert.ok(moved >= 8, `${moved} keys were on b`);
});

test('hash on a cookie', async (t) => {
	const backends = [];
	for (const name of ['a', 'b', 'c']) backends.push(await startBackend({ name, t }));
	const s = await sluiceWith(t, backends, ['balance = hash', 'hash_key = "cookie:uid"']);
	const map = await keyMap(s.port, users, 2, (k, r) => ({
		path: '/echo',
		headers: { cookie: r ? `theme=dark; uid=${k}` : `uid=${k}` },
	}));
	assertConsistentSpread(map, ['a', 'b', 'c'], 8);
	// Another cookie alone is no key: round-robin.
	const seq = await backendsOf(s.port, 3, () => ({ headers: { cookie: 'uidx=1; theme=dark' } }));
	assert.deepEqual(counts(seq), { a: 1, b: 1, c: 1 }, seq.join(''));
});

test('hash on a query parameter', async (t) => {
	const backends = [];
	for (const name of ['a', 'b', 'c']) backends.push(await startBackend({ name, t }));
	const s = await sluiceWith(t, backends, ['balance = hash', 'hash_key = "query:room"']);
	const map = await keyMap(s.port, users, 2, (k, r) => ({ path: r ? `/x/y?a=1&room=${k}&b=2` : `/echo?room=${k}` }));
	const per = assertConsistentSpread(map, ['a', 'b', 'c'], 8);
	// Same key as a header hash would give: keys do not depend on where
	// they come from.
	const s2 = await sluiceWith(t, backends, ['balance = hash', 'hash_key = "header:X-Room"']);
	const map2 = await keyMap(s2.port, users, 1, (k) => ({ path: '/echo', headers: { 'x-room': k } }));
	for (const k of users) assert.deepEqual([...map2.get(k)], [...map.get(k)], k);
	assert.equal(Object.values(per).reduce((x, y) => x + y, 0), users.length);
});

/** GET /echo from a given local address; resolves the JSON answer. */
function getFrom(port, localAddress) {
	return new Promise((resolve, reject) => {
		const req = http.get({ host: '127.0.0.1', port, path: '/echo', localAddress, agent: false }, (res) => {
			let body = '';
			res.setEncoding('utf8');
			res.on('data', (d) => { body += d; });
			res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(body) }));
		});
		req.setTimeout(5000 * SLOW, () => req.destroy(new Error('timeout')));
		req.on('error', reject);
	});
}

test('hash on the client address: each client IP sticks to a backend, whatever its port', async (t) => {
	const backends = [];
	for (const name of ['a', 'b', 'c']) backends.push(await startBackend({ name, t }));
	const s = await sluiceWith(t, backends, ['balance = hash', 'hash_key = client']);
	const ips = Array.from({ length: 40 }, (_, i) => `127.0.${Math.floor(i / 10) + 1}.${(i % 10) + 2}`);
	const map = new Map();
	for (let r = 0; r < 3; r++) {
		for (const ip of ips) {
			const res = await getFrom(s.port, ip);
			assert.equal(res.status, 200);
			assert.equal(res.json.headers['x-forwarded-for'], ip);
			if (!map.has(ip)) map.set(ip, new Set());
			map.get(ip).add(res.json.backend);
		}
	}
	assertConsistentSpread(map, ['a', 'b', 'c'], 5);
	// hash_key = client is the default.
	const s2 = await sluiceWith(t, backends, ['balance = hash']);
	for (const ip of ips.slice(0, 10)) {
		assert.deepEqual([(await getFrom(s2.port, ip)).json.backend], [...map.get(ip)], ip);
	}
});

/* ---------- random2 ---------- */

test('random2: idle servers share requests by weight', async (t) => {
	const backends = [];
	for (const name of ['a', 'b', 'c']) backends.push(await startBackend({ name, t }));
	const s = await sluiceWith(t, backends, ['balance = random2'], { weights: [1, 1, 2] });
	const c = counts(await backendsOf(s.port, 400));
	// Expected 100/100/200; binomial sd about 9 and 10: 5 sd of room.
	assert.ok(Math.abs((c.a || 0) - 100) <= 45, JSON.stringify(c));
	assert.ok(Math.abs((c.b || 0) - 100) <= 45, JSON.stringify(c));
	assert.ok(Math.abs((c.c || 0) - 200) <= 50, JSON.stringify(c));
});

test('random2: of two servers, the one without held requests gets every new one', async (t) => {
	const [a, b] = await holdingBackends(t, ['a', 'b']);
	const s = await sluiceWith(t, [a, b], ['balance = random2']);
	const held = request(s.port, { path: '/hold' });
	await until(() => a.held.length + b.held.length === 1, 'held request');
	const idle = a.held.length ? 'b' : 'a';
	assert.deepEqual(counts(await backendsOf(s.port, 20)), { [idle]: 20 });
	a.release();
	b.release();
	assert.equal((await held).status, 200);
});

/* ---------- configuration ---------- */

test('sluice -t: balance and hash_key errors name the line', () => {
	const base = 'listener "l" { address = "127.0.0.1:8080" }\n';
	let r = checkConfig(`${base}pool "p" {\n  balance = fastest\n  server "a" { address = "127.0.0.1:1" }\n}\n`);
	assert.equal(r.code, 1);
	assert.match(r.stderr, /sluice\.conf:3: pool "p": invalid balance "fastest" \(expected roundrobin, leastconn, hash or random2\)/);
	r = checkConfig(`${base}pool "p" {\n  balance = leastconn\n  hash_key = "header:X-User"\n  server "a" { address = "127.0.0.1:1" }\n}\n`);
	assert.equal(r.code, 1);
	assert.match(r.stderr, /sluice\.conf:4: pool "p": hash_key is set but balance = leastconn \(only hash uses it\)/);
	r = checkConfig(`${base}pool "p" {\n  balance = hash\n  hash_key = "query:"\n  server "a" { address = "127.0.0.1:1" }\n}\n`);
	assert.equal(r.code, 1);
	assert.match(r.stderr, /sluice\.conf:4: pool "p": invalid hash_key "query:"/);
	for (const b of ['roundrobin', 'leastconn', 'hash', 'random2']) {
		r = checkConfig(`${base}pool "p" {\n  balance = ${b}\n  server "a" { address = "127.0.0.1:1" }\n}\n`);
		assert.equal(r.code, 0, r.stderr);
	}
});
