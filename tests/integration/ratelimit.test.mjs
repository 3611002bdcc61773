// Rate limits kept in-process (no Redis): exact GCRA edges through the real
// binary, the 429 and its fields, keys by address (X-Forwarded-For with and
// without trusted proxies), header, cookie and route, several policies,
// WebSocket upgrade and message limits with a real ws client, connection
// limits, and one budget shared by two workers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';
import { RawConn, request } from './lib/client.mjs';
import { openWs, startWsBackend } from './lib/ws.mjs';

/** A sluice with these ratelimit sections and one route applying `apply`. */
async function limited(t, backend, { limits, apply, workers = 1, top = '', routeExtra = '' }) {
	return startSluice({
		t,
		config: (ctx) => [
			`workers = ${workers}`,
			'log_level = info',
			`access_log = "${ctx.accessLogPath}"`,
			top,
			`listener "web" { address = "127.0.0.1:${ctx.port}" }`,
			`pool "p" { server "a" { address = "${backend.address}" } }`,
			limits,
			`route "r" { pool = "p" ratelimit = "${apply}" }`,
			routeExtra,
		].join('\n') + '\n',
	});
}

const get = (s, headers = {}, path = '/x') => request(s.port, { path, headers });

test('burst + 1 pass at once, then 429 with its fields; after T the next passes', async (t) => {
	const b = await startBackend({ t });
	const s = await limited(t, b, {
		limits: 'ratelimit "edge" { rate = 1 per = 1s burst = 3 headers = on }',
		apply: 'edge',
	});
	for (let i = 0; i < 4; i++) {
		const r = await get(s);
		assert.equal(r.status, 200, `request ${i + 1} passes`);
		assert.equal(r.headers.ratelimit, `"edge";r=${3 - i};t=${i + 1}`);
	}
	const denied = await get(s);
	assert.equal(denied.status, 429);
	assert.equal(denied.headers['retry-after'], '1');
	assert.equal(denied.headers['ratelimit-policy'], '"edge";q=1;w=1');
	assert.equal(denied.headers.ratelimit, '"edge";r=0;t=1');
	assert.equal(denied.headers['content-type'], 'application/problem+json');
	assert.deepEqual(JSON.parse(denied.body.toString()), {
		type: 'about:blank', title: 'Too Many Requests', status: 429,
		detail: 'rate limit "edge" exceeded', policy: 'edge', retry_after: 1,
	});
	assert.equal(b.requests.length, 4, 'the denied request never reached the server');
	await sleep(1050);
	assert.equal((await get(s)).status, 200, 'one more after T');
	assert.equal((await get(s)).status, 429, 'and only one');
	const lines = await s.waitForAccessLog(7);
	const rl = lines.filter((l) => l.termination === 'rate_limited');
	assert.equal(rl.length, 2);
	for (const l of rl) {
		assert.equal(l.status, 429);
		assert.equal(l.phase, 'head');
		assert.equal(l.ratelimit, 'edge');
		assert.equal(l.server, null);
	}
	assert.ok(lines.filter((l) => l.status === 200).every((l) => !('ratelimit' in l)));
});

test('a 429 keeps the connection; a refused request with a body closes it', async (t) => {
	const b = await startBackend({ t });
	const s = await limited(t, b, { limits: 'ratelimit "one" { rate = 1 per = 60s }', apply: 'one' });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n');
	const rs = await c.waitResponses(2);
	assert.equal(rs[0].status, 200);
	assert.equal(rs[1].status, 429);
	assert.equal(rs[1].headers['retry-after'], '60');
	assert.equal(rs[1].headers.connection, undefined);
	const c2 = await RawConn.open(s.port);
	t.after(() => c2.destroy());
	await c2.write('POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n');
	const [r] = await c2.waitResponses(1);
	assert.equal(r.status, 429);
	assert.equal(r.headers.connection, 'close');
});

test('keys: client address, X-Forwarded-For only from trusted proxies', async (t) => {
	const b = await startBackend({ t });
	const limits = 'ratelimit "ip" { rate = 1 per = 60s burst = 1 }';
	const plain = await limited(t, b, { limits, apply: 'ip' });
	// Untrusted peer: X-Forwarded-For is ignored, everyone is 127.0.0.1.
	assert.equal((await get(plain, { 'X-Forwarded-For': '192.0.2.1' })).status, 200);
	assert.equal((await get(plain, { 'X-Forwarded-For': '192.0.2.2' })).status, 200);
	assert.equal((await get(plain, { 'X-Forwarded-For': '192.0.2.3' })).status, 429);

	const trusting = await limited(t, b, { limits, apply: 'ip', top: 'trusted_proxies = "127.0.0.1 10.0.0.0/8"' });
	const xff = (v) => get(trusting, { 'X-Forwarded-For': v });
	assert.equal((await xff('192.0.2.1')).status, 200);
	assert.equal((await xff('192.0.2.1')).status, 200);
	assert.equal((await xff('192.0.2.1')).status, 429, '192.0.2.1 has its own budget, now spent');
	// Walked from the right past trusted hops, with spaces.
	assert.equal((await xff('198.51.100.7 ,  10.1.1.1')).status, 200);
	assert.equal((await xff('192.0.2.1, 198.51.100.7')).status, 200, 'the nearest untrusted one counts');
	assert.equal((await xff('198.51.100.7')).status, 429);
	// A forged left part does not help: the client is still 203.0.113.5.
	assert.equal((await xff('1.1.1.1, 203.0.113.5')).status, 200);
	assert.equal((await xff('2.2.2.2, 203.0.113.5')).status, 200);
	assert.equal((await xff('3.3.3.3, 203.0.113.5')).status, 429);
	// IPv6, in another spelling, is one key.
	assert.equal((await xff('2001:db8::1')).status, 200);
	assert.equal((await xff('[2001:DB8:0::1]:443')).status, 200);
	assert.equal((await xff('2001:db8:0:0::1')).status, 429);
	// No X-Forwarded-For: the peer itself.
	assert.equal((await get(trusting)).status, 200);
});

test('keys: a header, a cookie and the route; requests without the header are not counted', async (t) => {
	const b = await startBackend({ t });
	const s = await limited(t, b, {
		limits: [
			'ratelimit "key" { rate = 1 per = 60s key = "header:X-Api-Key" }',
			'ratelimit "user" { rate = 1 per = 60s key = "cookie:uid" }',
		].join('\n'),
		apply: 'key user',
	});
	assert.equal((await get(s, { 'X-Api-Key': 'k1' })).status, 200);
	assert.equal((await get(s, { 'X-Api-Key': 'k2' })).status, 200);
	const r = await get(s, { 'X-Api-Key': 'k1' });
	assert.equal(r.status, 429);
	assert.equal(JSON.parse(r.body.toString()).policy, 'key');
	for (let i = 0; i < 3; i++) assert.equal((await get(s)).status, 200, 'no key, no count');
	assert.equal((await get(s, { Cookie: 'a=1; uid=u1' })).status, 200);
	assert.equal((await get(s, { Cookie: 'uid=u2' })).status, 200);
	assert.equal((await get(s, { Cookie: 'uid=u1; b=2' })).status, 429);

	const shared = await limited(t, b, { limits: 'ratelimit "all" { rate = 1 per = 60s burst = 1 key = route }', apply: 'all' });
	assert.equal((await get(shared, { 'X-Forwarded-For': '1.1.1.1' })).status, 200);
	assert.equal((await get(shared, { 'X-Forwarded-For': '2.2.2.2' })).status, 200);
	assert.equal((await get(shared)).status, 429, 'every client of the route shares one budget');
});

test('several policies: the strictest answer wins; other routes are not limited', async (t) => {
	const b = await startBackend({ t });
	const s = await limited(t, b, {
		limits: [
			'ratelimit "loose" { rate = 1 per = 5s burst = 1 headers = on }',
			'ratelimit "strict" { rate = 1 per = 60s headers = on }',
		].join('\n'),
		apply: 'loose strict',
		routeExtra: 'route "free" { path = "/free" pool = "p" }',
	});
	const first = await get(s);
	assert.equal(first.status, 200);
	// Both allow; the field shows the one with the least left.
	assert.equal(first.headers.ratelimit, '"strict";r=0;t=60');
	const second = await get(s);
	assert.equal(second.status, 429);
	assert.equal(second.headers['ratelimit-policy'], '"strict";q=1;w=60');
	assert.equal(second.headers['retry-after'], '60');
	for (let i = 0; i < 5; i++) {
		const r = await get(s, {}, '/free/x');
		assert.equal(r.status, 200);
		assert.equal(r.headers.ratelimit, undefined);
	}
});

test('kind = upgrades limits WebSocket upgrades only', async (t) => {
	const b = await startWsBackend({ t });
	const s = await limited(t, b, { limits: 'ratelimit "ws" { rate = 1 per = 60s burst = 1 kind = upgrades }', apply: 'ws' });
	const url = `ws://127.0.0.1:${s.port}/ws`;
	const a = await openWs(url, { t });
	const c = await openWs(url, { t });
	await assert.rejects(openWs(url, { t }), (e) => {
		assert.equal(e.statusCode, 429);
		assert.equal(e.headers['ratelimit-policy'], '"ws";q=1;w=60');
		return true;
	});
	for (let i = 0; i < 4; i++) assert.equal((await get(s)).status, 200, 'plain requests pass');
	a.send('still open');
	assert.equal((await a.next()).data.toString(), 'still open');
	c.close();
	a.close();
});

test('kind = messages, on_exceed = close: over the limit, close 1008', async (t) => {
	const b = await startWsBackend({ t });
	const s = await limited(t, b, { limits: 'ratelimit "msgs" { rate = 1 per = 60s burst = 2 kind = messages }', apply: 'msgs' });
	const ws = await openWs(`ws://127.0.0.1:${s.port}/ws`, { t });
	for (let i = 0; i < 3; i++) {
		ws.send(`m${i}`);
		assert.equal((await ws.next()).data.toString(), `m${i}`);
	}
	ws.send('one too many');
	const info = await ws.closed;
	assert.equal(info.code, 1008);
	const lines = await s.waitForAccessLog(1);
	assert.equal(lines[0].termination, 'rate_limited');
	assert.equal(lines[0].ratelimit, 'msgs');
	// Each connection has its own budget.
	const ws2 = await openWs(`ws://127.0.0.1:${s.port}/ws`, { t });
	ws2.send('fresh');
	assert.equal((await ws2.next()).data.toString(), 'fresh');
	ws2.close();
});

test('kind = messages, on_exceed = drop: extra messages vanish, fragments and all', async (t) => {
	const b = await startWsBackend({ t });
	const s = await limited(t, b, {
		limits: 'ratelimit "msgs" { rate = 1 per = 1s burst = 1 kind = messages on_exceed = drop }',
		apply: 'msgs',
	});
	const ws = await openWs(`ws://127.0.0.1:${s.port}/ws`, { t });
	ws.send('a');
	ws.send('b');
	ws.send(Buffer.alloc(70000, 0x63), { fin: false });	// a fragmented, dropped message
	ws.ping('p');
	ws.send(Buffer.alloc(10, 0x63), { fin: true });
	ws.send('d');
	assert.equal((await ws.next()).data.toString(), 'a');
	assert.equal((await ws.next()).data.toString(), 'b');
	await ws.waitPong();
	await sleep(1100);
	ws.send('e');
	assert.equal((await ws.next()).data.toString(), 'e');
	const server = await b.conn(0);
	assert.deepEqual(server.received.map((m) => m.data.toString()), ['a', 'b', 'e']);
	assert.equal(ws.closeInfo, null, 'still open');
	ws.close();
});

test('kind = connections: at most N at once per key; 429 and close beyond', async (t) => {
	const b = await startBackend({ t });
	const s = await limited(t, b, { limits: 'ratelimit "conns" { rate = 2 kind = connections }', apply: 'conns' });
	const open = async () => {
		const c = await RawConn.open(s.port);
		t.after(() => c.destroy());
		await c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
		const [r] = await c.waitResponses(1);
		return { c, r };
	};
	const one = await open();
	const two = await open();
	assert.equal(one.r.status, 200);
	assert.equal(two.r.status, 200);
	const three = await open();
	assert.equal(three.r.status, 429);
	assert.equal(three.r.headers.connection, 'close');
	assert.ok(await three.c.waitClose());
	// A second request on a counted connection is not counted again.
	await one.c.write('GET /again HTTP/1.1\r\nHost: x\r\n\r\n');
	const again = await one.c.waitResponses(2);
	assert.equal(again[1].status, 200);
	one.c.destroy();
	let ok = false;
	for (let i = 0; i < 50 && !ok; i++) {
		await sleep(20);
		const four = await open();
		ok = four.r.status === 200;
	}
	assert.ok(ok, 'a closed connection frees its place');
});

test('workers = 2 share one budget', async (t) => {
	const b = await startBackend({ t });
	const s = await limited(t, b, { limits: 'ratelimit "shared" { rate = 1 per = 60s burst = 9 }', apply: 'shared', workers: 2 });
	const statuses = [];
	for (let i = 0; i < 30; i++) statuses.push((await request(s.port, { path: `/n${i}` })).status);
	assert.equal(statuses.filter((x) => x === 200).length, 10);
	assert.deepEqual(statuses.slice(0, 10), Array(10).fill(200));
	const lines = await s.waitForAccessLog(30);
	assert.equal(new Set(lines.map((l) => l.worker)).size, 2, 'both workers took requests');
});
