// The acceptance test of sticky sessions: three real Socket.io 4 servers
// (npm socket.io, default transports, no adapter) in one round-robin pool
// behind sluice, 200 socket.io-client clients that start on long-polling,
// upgrade to websocket and exchange acknowledged messages. With
// sticky = socketio (no cookies) and sticky = cookie (clients keep cookies)
// every client must succeed; with stickiness off the same run must fail,
// which shows that it tests something. Also: a websocket-only client, and a
// server that dies while its clients are connected.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poolOf, sleep, startSluice } from './lib/sluice.mjs';
import { request } from './lib/client.mjs';
import { sioReconnectingClient, sioSession, sioSessions, startSioServers } from './lib/sio.mjs';
import { rawUpgrade, within } from './lib/ws.mjs';

const CLIENTS = 200;
const MESSAGES = 20;
const STICKY_KEY = 'integration-test-sticky-key-0123456789';

async function setup(t, sticky, { extra = {} } = {}) {
	const servers = await startSioServers(['a', 'b', 'c'], { t });
	const route = { name: 'io', host: '*', path: '/', pool: 'chat' };
	if (sticky !== 'off') route.sticky = sticky;
	const s = await startSluice({
		workers: 2,
		pools: { chat: poolOf(servers) },
		routes: [route],
		// Only where it matters, so that the "off" run differs from the
		// others by the route's stickiness alone.
		...(sticky !== 'off' ? { stickyKey: STICKY_KEY } : {}),
		t,
		...extra,
	});
	return { s, servers };
}

/**
 * The acceptance run: CLIENTS sessions through sluice. Returns the
 * problems found (empty when every client connected without error, was
 * upgraded and got all echoes, and no server and no access-log line saw a
 * 400 or an unknown session) and the raw material.
 */
async function acceptance(s, servers, { cookies }) {
	const results = await sioSessions(s.url, CLIENTS, { messages: MESSAGES, cookies, timeout: 10000 });
	const problems = [];
	for (const r of results) {
		if (!r.ok) problems.push(`client ${r.i}: ${r.problems.join('; ') || 'not ok'} (upgraded ${r.upgraded}, echoes ${r.echoes})`);
	}
	const notUpgraded = results.filter((r) => !r.upgraded || r.transport !== 'websocket').length;
	if (notUpgraded) problems.push(`${notUpgraded} clients never upgraded to websocket`);
	const echoes = results.reduce((n, r) => n + r.echoes, 0);
	if (echoes !== CLIENTS * MESSAGES) problems.push(`${echoes} of ${CLIENTS * MESSAGES} echoes`);
	for (const srv of servers) {
		for (const e of srv.events.filter((x) => x.type === 'connection_error')) {
			problems.push(`server ${srv.name}: Engine.IO connection_error ${e.code} "${e.message}" for ${e.url}`);
		}
	}
	// Give sluice a moment to write the lines of the tunnels just closed.
	await sleep(300);
	for (const l of s.accessLog()) {
		if (l.status === 400) problems.push(`access log: 400 for ${l.method} ${l.path} (${l.termination})`);
		if (l.status >= 500) problems.push(`access log: ${l.status} for ${l.method} ${l.path} (${l.termination})`);
	}
	return { problems, results };
}

/** sid -> servers whose engine received a request carrying that sid. */
function sidServers(servers) {
	const m = new Map();
	for (const srv of servers) {
		for (const e of srv.events) {
			if (e.type !== 'req' || !e.sid) continue;
			if (!m.has(e.sid)) m.set(e.sid, new Set());
			m.get(e.sid).add(srv.name);
		}
	}
	return m;
}

function summary(problems, max = 15) {
	return `${problems.length} problems:\n${problems.slice(0, max).join('\n')}${problems.length > max ? '\n...' : ''}`;
}

test('sticky = socketio: 200 clients without cookies poll, upgrade and echo 20 messages each', async (t) => {
	const { s, servers } = await setup(t, 'socketio');
	// No cookie is needed, and none is set.
	const hs = await request(s.port, { path: '/socket.io/?EIO=4&transport=polling' });
	assert.equal(hs.status, 200);
	assert.match(hs.body.toString(), /^0\{"sid":"/);
	assert.equal(hs.headers['set-cookie'], undefined, 'sticky = socketio sets no cookie');

	const { problems, results } = await acceptance(s, servers, { cookies: false });
	assert.deepEqual(problems, [], summary(problems));
	// Every request of a session reached the server that owns it.
	const owner = new Map();
	for (const srv of servers) {
		for (const e of srv.events) if (e.type === 'connection') owner.set(e.sid, srv.name);
	}
	for (const r of results) assert.equal(owner.get(r.sid), r.server, `client ${r.i}: echoes from the session's server`);
	for (const [sid, names] of sidServers(servers)) {
		assert.equal(names.size, 1, `sid ${sid} reached ${[...names]}`);
	}
	// No cookie came in: these clients have none.
	for (const srv of servers) {
		assert.deepEqual(srv.events.filter((e) => e.type === 'req' && e.cookie), [], `server ${srv.name} got no cookie`);
	}
	// Round-robin spread the sessions.
	const per = Object.fromEntries(servers.map((x) => [x.name, results.filter((r) => r.server === x.name).length]));
	for (const [name, n] of Object.entries(per)) assert.ok(n >= CLIENTS / 10, `server ${name} got ${n} sessions: ${JSON.stringify(per)}`);
	// One access-log line per tunnel.
	const tunnels = await s.waitForAccessLog((l) => l.filter((x) => x.status === 101).length >= CLIENTS, 5000);
	const t101 = tunnels.filter((x) => x.status === 101);
	assert.equal(t101.length, CLIENTS);
	for (const l of t101) {
		assert.equal(l.phase, 'tunnel');
		assert.equal(l.termination, 'ok', JSON.stringify(l));
		assert.ok(l.ws_messages_in >= MESSAGES && l.ws_messages_out >= MESSAGES, JSON.stringify(l));
	}
});

test('sticky = cookie: 200 clients that keep cookies poll, upgrade and echo 20 messages each', async (t) => {
	const { s, servers } = await setup(t, 'cookie');
	// The cookie sluice sets, and that it sticks.
	const first = await request(s.port, { path: '/whoami' });
	const setCookie = [].concat(first.headers['set-cookie'] || []);
	assert.equal(setCookie.length, 1, `one Set-Cookie: ${setCookie}`);
	const m = /^sluice=([A-Za-z0-9_-]{22}); Path=\/; HttpOnly; SameSite=Lax$/.exec(setCookie[0]);
	assert.ok(m, `Set-Cookie: ${setCookie[0]}`);
	for (let i = 0; i < 6; i++) {
		const again = await request(s.port, { path: '/whoami', headers: { Cookie: `sluice=${m[1]}` } });
		assert.equal(again.body.toString(), first.body.toString(), 'a request with the cookie goes to its server');
		assert.equal(again.headers['set-cookie'], undefined, 'a valid cookie is not set again');
	}
	// A forged one is ignored and replaced.
	const forged = await request(s.port, { path: '/whoami', headers: { Cookie: 'sluice=AAAAAAAAAAAAAAAAAAAAAA' } });
	assert.equal(forged.status, 200);
	const replaced = [].concat(forged.headers['set-cookie'] || []);
	assert.equal(replaced.length, 1, 'a forged cookie is replaced');
	assert.match(replaced[0], /^sluice=[A-Za-z0-9_-]{22}; /);
	assert.notEqual(replaced[0].split(';')[0], 'sluice=AAAAAAAAAAAAAAAAAAAAAA');

	const { problems } = await acceptance(s, servers, { cookies: true });
	assert.deepEqual(problems, [], summary(problems));
	// Every request after the handshake carried sluice's cookie.
	for (const srv of servers) {
		const bare = srv.events.filter((e) => e.type === 'req' && e.sid && !/(^|; )sluice=/.test(e.cookie || ''));
		assert.deepEqual(bare.map((e) => e.url).slice(0, 5), [], `server ${srv.name}: requests with a sid but no cookie`);
	}
	for (const [sid, names] of sidServers(servers)) {
		assert.equal(names.size, 1, `sid ${sid} reached ${[...names]}`);
	}
});

test('stickiness off: the same run fails (the acceptance test tests something)', async (t) => {
	const { s, servers } = await setup(t, 'off');
	const { problems, results } = await acceptance(s, servers, { cookies: true });
	// What went wrong, by kind (for the log).
	const kinds = {};
	for (const r of results) {
		for (const p of r.problems) {
			const k = p.replace(/\d+/g, 'N').slice(0, 90);
			kinds[k] = (kinds[k] || 0) + 1;
		}
	}
	t.diagnostic(`${results.filter((r) => r.ok).length} of ${CLIENTS} clients ok; problems by kind: ${JSON.stringify(kinds)}`);
	assert.ok(problems.length > 0, 'without stickiness some client must hit a 400, an unknown session, a connect_error or no upgrade');
	const text = problems.join('\n');
	assert.match(text, /Session ID unknown|connect_error|400|never upgraded|disconnect|timeout/);
});

test('sticky = socketio: a websocket-only client works and sluice learns its sid', async (t) => {
	const { s, servers } = await setup(t, 'socketio');
	const r = await sioSession(s.url, 0, { keepOpen: true, clientOpts: { transports: ['websocket'] } });
	assert.ok(r.ok, r.problems.join('; '));
	t.after(() => r.socket.disconnect());
	assert.equal(r.transport, 'websocket');
	// The sid was learnt from the first websocket frame: a polling request
	// with it goes to the server that holds the session, which answers
	// "Bad request" (code 3: wrong transport) rather than "Session ID
	// unknown" (code 1) as the other servers would.
	for (let i = 0; i < 6; i++) {
		const res = await request(s.port, { path: `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(r.sid)}` });
		assert.equal(res.status, 400);
		assert.deepEqual(JSON.parse(res.body.toString()), { code: 3, message: 'Bad request' },
			`poll ${i} with the websocket session's sid reached its server`);
	}
	const reached = sidServers(servers).get(r.sid);
	assert.deepEqual([...reached], [r.server]);
	// The session is still alive and well after those polls.
	assert.equal((await r.socket.timeout(3000).emitWithAck('whoami')).server, r.server);
	r.socket.disconnect();
	for (const srv of servers) {
		assert.deepEqual(srv.events.filter((e) => e.type === 'connection_error' && e.code === 1), [], `server ${srv.name}: no unknown sid`);
	}
	// Several websocket-only clients at once, spread over the servers.
	const many = await sioSessions(s.url, 30, { clientOpts: { transports: ['websocket'] } });
	assert.deepEqual(many.filter((x) => !x.ok).map((x) => x.problems.join('; ')), []);
});

test('sticky = cookie: the 101 of a websocket-only session carries the cookie', async (t) => {
	const { s } = await setup(t, 'cookie');
	const { conn, response } = await rawUpgrade(s.port, { path: '/socket.io/?EIO=4&transport=websocket' });
	t.after(() => conn.destroy());
	assert.equal(response.status, 101, response.head);
	const sc = [].concat(response.headers['set-cookie'] || []);
	assert.equal(sc.length, 1, response.head);
	assert.match(sc[0], /^sluice=[A-Za-z0-9_-]{22}; Path=\/; HttpOnly; SameSite=Lax$/);
});

test('sticky = "cookie socketio": clients with and without cookies all succeed', async (t) => {
	const { s, servers } = await setup(t, 'cookie socketio');
	const [withCookies, without] = await Promise.all([
		sioSessions(s.url, 50, { messages: MESSAGES, cookies: true, timeout: 10000 }),
		sioSessions(s.url, 50, { messages: MESSAGES, cookies: false, timeout: 10000 }),
	]);
	const bad = [...withCookies, ...without].filter((r) => !r.ok).map((r) => `client ${r.i}: ${r.problems.join('; ')}`);
	assert.deepEqual(bad, []);
	for (const srv of servers) {
		assert.deepEqual(srv.events.filter((e) => e.type === 'connection_error'), [], `server ${srv.name}`);
	}
	for (const [sid, names] of sidServers(servers)) assert.equal(names.size, 1, `sid ${sid} reached ${[...names]}`);
});

for (const sticky of ['socketio', 'cookie']) {
	test(`sticky = ${sticky}: when a server dies its clients reconnect to another one`, async (t) => {
		const { s, servers } = await setup(t, sticky);
		const cookies = sticky === 'cookie';
		const clients = [];
		t.after(() => { for (const c of clients) c.disconnect(); });
		for (let i = 0; i < 30; i++) clients.push(await sioReconnectingClient(s.url, { cookies }));
		const whoami = (c) => c.timeout(3000).emitWithAck('whoami');
		const before = await Promise.all(clients.map(whoami));
		const count = (name) => before.filter((w) => w.server === name).length;
		const victim = servers.reduce((a, b) => (count(b.name) > count(a.name) ? b : a));
		assert.ok(count(victim.name) > 0);
		const onVictim = clients.filter((c, i) => before[i].server === victim.name);
		const others = clients.filter((c, i) => before[i].server !== victim.name);
		// With sticky cookies: a cookie that names the victim.
		let victimCookie = null;
		if (cookies) {
			for (let i = 0; i < 12 && !victimCookie; i++) {
				const res = await request(s.port, { path: '/whoami' });
				if (res.body.toString().trim() === victim.name) victimCookie = [].concat(res.headers['set-cookie'])[0].split(';')[0];
			}
			assert.ok(victimCookie, 'got a cookie naming the victim');
		}

		const killedAt = Date.now();
		await victim.kill('SIGKILL');
		// Every client of the dead server is back, upgraded, on another
		// server, within a few seconds.
		await within((async () => {
			for (;;) {
				const back = onVictim.every((c) => c.connected && c.connects >= 2 && c.io.engine.transport.name === 'websocket');
				if (back) return;
				await sleep(50);
			}
		})(), 8000, 'reconnection of the dead server\'s clients');
		const elapsed = Date.now() - killedAt;
		assert.ok(elapsed < 5000, `clients were back after ${elapsed} ms`);
		const after = await Promise.all(onVictim.map(whoami));
		for (const w of after) assert.notEqual(w.server, victim.name);
		for (const c of others) assert.deepEqual(c.disconnects, [], 'clients of the other servers were not disturbed');
		const still = await Promise.all(others.map(whoami));
		assert.deepEqual(still.map((w) => w.server), before.filter((w) => w.server !== victim.name).map((w) => w.server));
		// sluice does not hang: a plain request is answered at once.
		const plain = await request(s.port, { path: '/whoami', timeout: 2000 });
		assert.equal(plain.status, 200);
		assert.notEqual(plain.body.toString().trim(), victim.name);
		if (cookies) {
			// A cookie naming the dead server: served elsewhere, cookie replaced.
			const res = await request(s.port, { path: '/whoami', headers: { Cookie: victimCookie }, timeout: 2000 });
			assert.equal(res.status, 200);
			assert.notEqual(res.body.toString().trim(), victim.name);
			const sc = [].concat(res.headers['set-cookie'] || []);
			assert.equal(sc.length, 1, 'a new cookie replaces the dead server\'s');
			assert.notEqual(sc[0].split(';')[0], victimCookie);
		}
	});
}
