// Server health: active checks (http, socketio, tcp over TLS) taking a
// killed backend out within interval x fall and back after rise, with a
// steady load that sees no errors beyond what was in flight; a flapping
// backend held down with back-off; passive ejection on refused connects
// capped by max_ejected, and on 5xx answers when enabled; the slow-start
// ramp in the spread of requests; health kept across a reload; and the
// fast 503 (with Retry-After) when no server is left, for a Socket.io
// handshake too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { SLOW, freePort, sleep, startSluice } from './lib/sluice.mjs';
import { request } from './lib/client.mjs';
import { dep } from './lib/deps.mjs';
import { startSioServers } from './lib/sio.mjs';
import { startHttpsBackend, testPki } from './lib/tls.mjs';

/* ---------- a backend that can die, come back on its port, and fail checks ---------- */

class Backend {
	constructor(name) {
		this.name = name;
		this.port = 0;
		this.address = '';
		this.hits = 0;			// requests other than checks
		this.checks = 0;
		this.checkTimes = [];		// when each check arrived (ms)
		this.status = 200;		// of the answers to requests
		this.healthy = () => true;	// the answer to the next check
		this.server = null;
		this.sockets = new Set();
	}

	async start() {
		const server = http.createServer((req, res) => {
			if (req.url.startsWith('/healthz')) {
				this.checks++;
				this.checkTimes.push(performance.now());
				const ok = this.healthy();
				res.writeHead(ok ? 200 : 503, { 'Content-Length': 2 });
				res.end(ok ? 'ok' : 'no');
				return;
			}
			this.hits++;
			req.resume();
			res.writeHead(this.status, { 'Content-Length': Buffer.byteLength(this.name), 'X-Backend': this.name });
			res.end(this.name);
		});
		server.on('connection', (s) => {
			this.sockets.add(s);
			s.on('close', () => this.sockets.delete(s));
		});
		await new Promise((resolve, reject) => {
			server.once('error', reject);
			server.listen(this.port, '127.0.0.1', resolve);
		});
		this.server = server;
		this.port = server.address().port;
		this.address = `127.0.0.1:${this.port}`;
		return this;
	}

	/** Die: every connection cut, the port closed. */
	async stop() {
		if (!this.server) return;
		const server = this.server;
		this.server = null;
		for (const s of this.sockets) s.destroy();
		await new Promise((r) => server.close(() => r()));
	}
}

async function backends(t, ...names) {
	const list = await Promise.all(names.map((n) => new Backend(n).start()));
	t.after(() => Promise.all(list.map((b) => b.stop())));
	return list;
}

/* ---------- configuration ---------- */

const kv = (o) => Object.entries(o).map(([k, v]) => `${k} = ${v}`).join('\n    ');

/**
 * pools: {name: {lines: [...], health: {...}, passive: {...}, servers:
 * [{name, address, weight}]}}; values as written in the file.
 */
function conf(ctx, pools, { routes, workers = 2 } = {}) {
	const L = [
		`workers = ${workers}`,
		'log_level = info',
		`access_log = "${ctx.accessLogPath}"`,
		'shutdown_timeout = 2s',
		`listener "web" { address = "127.0.0.1:${ctx.port}" }`,
	];
	for (const [name, p] of Object.entries(pools)) {
		L.push(`pool "${name}" {`);
		for (const line of p.lines || []) L.push(`  ${line}`);
		if (p.health) L.push(`  health {\n    ${kv(p.health)}\n  }`);
		if (p.passive) L.push(`  passive {\n    ${kv(p.passive)}\n  }`);
		for (const s of p.servers) {
			L.push(`  server "${s.name}" { address = "${s.address}"${s.weight ? ` weight = ${s.weight}` : ''} }`);
		}
		L.push('}');
	}
	const rs = routes || [{ name: 'all', pool: Object.keys(pools)[0] }];
	for (const r of rs) {
		L.push(`route "${r.name}" { path = "${r.path || '/'}" pool = "${r.pool}"${r.sticky ? ` sticky = ${r.sticky}` : ''} }`);
	}
	return L.join('\n') + '\n';
}

/* ---------- helpers ---------- */

/** Wall-clock time (ms) of the first stderr line matching re (its group 1 is the timestamp). */
async function logTime(s, re, timeout) {
	const m = await s.waitForLog(re, timeout);
	return Date.parse(m[1]);
}

/** Times of the error log lines that report a refused connect to port. */
function connectFailures(s, port) {
	const re = new RegExp(`^(\\S+) \\[warn\\] s\\d+ \\S+: connect\\(127\\.0\\.0\\.1:${port}\\) failed`, 'gm');
	return [...s.errorLog().matchAll(re)].map((m) => Date.parse(m[1]));
}

/** Poll until pred() holds, for at most ms (times SLOW). */
async function until(pred, ms, what) {
	const end = Date.now() + ms * SLOW;
	while (!pred()) {
		if (Date.now() > end) throw new Error(`${what}: not within ${ms * SLOW} ms`);
		await sleep(20);
	}
}

/** `concurrency` clients sending requests back to back until done() is called. */
function steadyLoad(port, { concurrency = 4 } = {}) {
	const st = { ok: 0, errors: [], by: {}, stopped: false };
	const loops = Array.from({ length: concurrency }, async () => {
		while (!st.stopped) {
			try {
				const r = await request(port, { path: '/load', timeout: 3000 });
				if (r.status === 200) {
					st.ok++;
					const b = r.body.toString();
					st.by[b] = (st.by[b] || 0) + 1;
				} else {
					st.errors.push(r.status);
				}
			} catch (e) {
				st.errors.push(e.code || e.message);
			}
			await sleep(2);
		}
	});
	st.done = async () => {
		st.stopped = true;
		await Promise.all(loops);
		return st;
	};
	return st;
}

/** n requests one after the other; how many each backend answered, and the statuses. */
async function spread(port, n, path = '/x') {
	const by = {};
	const statuses = [];
	for (let i = 0; i < n; i++) {
		const r = await request(port, { path });
		statuses.push(r.status);
		const b = r.status === 200 ? r.body.toString() : `status ${r.status}`;
		by[b] = (by[b] || 0) + 1;
	}
	return { by, statuses };
}

const CHECK = { type: 'http', path: '"/healthz"', interval: '200ms', timeout: '150ms', rise: 2, fall: 2, jitter: '0%' };

/* ---------- tests ---------- */

test('check times are random: the first checks spread over one interval, then each interval is drawn within jitter', async (t) => {
	const list = await backends(t, 'a', 'b', 'c', 'd', 'e', 'f');
	const s = await startSluice({
		t,
		config: (ctx) => conf(ctx, {
			p: {
				health: { ...CHECK, interval: '300ms', jitter: '50%' },
				servers: list.map((b) => ({ name: b.name, address: b.address })),
			},
		}),
	});
	await until(() => list.every((b) => b.checks >= 8), 10000, 'eight checks of every server');
	// Six first checks drawn within 300 ms: all within 30 ms of each other
	// has odds of about 1 in 10,000; unseeded, they came at one instant.
	const firsts = list.map((b) => b.checkTimes[0]);
	const range = (xs) => Math.max(...xs) - Math.min(...xs);
	assert.ok(range(firsts) >= 30, `first checks ${firsts.map((x) => Math.round(x - Math.min(...firsts)))} ms apart`);
	// Each interval is drawn from 150-450 ms: seven of one server within 30
	// ms of each other would be as unlikely; unseeded, each was 150 ms.
	for (const b of list) {
		const gaps = b.checkTimes.slice(1, 8).map((x, i) => x - b.checkTimes[i]);
		assert.ok(range(gaps) >= 30, `${b.name}: intervals ${gaps.map(Math.round)} ms`);
		assert.ok(Math.min(...gaps) >= 120, `${b.name}: no interval under interval - jitter (${gaps.map(Math.round)} ms)`);
	}
	s.kill('SIGTERM');
	assert.equal((await s.waitExit(5000)).code, 0);
});

test('active http checks: a killed backend is out within interval x fall and back after rise; the load sees no errors beyond what was in flight', async (t) => {
	const [a, b] = await backends(t, 'a', 'b');
	const s = await startSluice({
		t,
		config: (ctx) => conf(ctx, {
			p: {
				// Passive ejection off: the checks alone are measured.
				health: CHECK, passive: { connect_failures: 0 },
				servers: [{ name: 'a', address: a.address }, { name: 'b', address: b.address }],
			},
		}),
	});
	const load = steadyLoad(s.port);
	await until(() => (load.by.a || 0) > 20 && (load.by.b || 0) > 20, 3000, 'both backends serving');

	const killedAt = Date.now();
	await b.stop();
	const downAt = await logTime(s, /^(\S+) \[warn\] server p\/b is down: connect\(127\.0\.0\.1:\d+\) failed: Connection refused \(2 failed checks in a row\)$/m, 3000);
	// interval x fall, plus the timeout and some scheduling slack.
	assert.ok(downAt - killedAt <= (200 * 2 + 150 + 250) * SLOW, `down ${downAt - killedAt} ms after the kill`);
	await sleep(400);
	// Once down, b gets no new request: no connect to it fails any more.
	const late = connectFailures(s, b.port).filter((ms) => ms > downAt + 50);
	assert.deepEqual(late, [], 'no connect to b after it went down');

	const hitsBefore = b.hits;
	const restartedAt = Date.now();
	await b.start();
	const upAt = await logTime(s, /^(\S+) \[info\] server p\/b is up: 2 passed checks in a row$/m, 3000);
	assert.ok(upAt - restartedAt <= (200 * 2 + 250) * SLOW, `up ${upAt - restartedAt} ms after the restart`);
	await until(() => b.hits > hitsBefore + 10, 3000, 'b serving again');
	const st = await load.done();
	// At most the requests in flight on b when it died (one per client);
	// refused connects were retried on a.
	assert.ok(st.errors.length <= 4, `client errors: ${JSON.stringify(st.errors)}`);
	assert.ok(st.ok > 100, `requests served: ${st.ok}`);
	// Each change logged once.
	assert.equal(s.errorLog().match(/server p\/b is down/g).length, 1);
	assert.equal(s.errorLog().match(/server p\/b is up/g).length, 1);
});

test('a flapping backend is held down, and held twice as long when it flaps again', async (t) => {
	const [f, g] = await backends(t, 'f', 'g');
	let n = 0;
	f.healthy = () => n++ % 2 === 0;	// pass, fail, pass, fail...
	const s = await startSluice({
		t,
		config: (ctx) => conf(ctx, {
			p: {
				health: {
					...CHECK, interval: '100ms', timeout: '80ms', rise: 1, fall: 1,
					flap_changes: 4, flap_window: '10s', flap_hold: '1s', flap_hold_max: '1m',
				},
				servers: [{ name: 'f', address: f.address }, { name: 'g', address: g.address }],
			},
		}),
	});
	const heldAt = await logTime(s, /^(\S+) \[warn\] server p\/f is flapping \(4 up\/down changes within 10000 ms\): held down for 1000 ms$/m, 3000);
	// Held: whatever its checks say, f gets nothing.
	const hits = f.hits;
	const { by } = await spread(s.port, 20);
	assert.deepEqual(by, { g: 20 });
	assert.equal(f.hits, hits);
	const overAt = await logTime(s, /^(\S+) \[info\] server p\/f: flap hold over, /m, 3000);
	assert.ok(overAt - heldAt >= 950 && overAt - heldAt <= 1400 * SLOW, `held for ${overAt - heldAt} ms`);
	// Still flapping: the next hold is twice as long.
	await s.waitForLog(/server p\/f is flapping \(4 up\/down changes within 10000 ms\): held down for 2000 ms/, 3000);
	// The changes during a hold are not logged: a handful of lines, not one per check.
	const lines = s.errorLog().match(/server p\/f is (up|down)/g) || [];
	assert.ok(lines.length <= 10, `${lines.length} up/down lines`);
});

test('passive: refused connects eject a server at once, at most max_ejected of the pool', async (t) => {
	const [l1, l2] = await backends(t, 'l1', 'l2');
	const d1 = await freePort();
	const d2 = await freePort();
	const s = await startSluice({
		t,
		config: (ctx) => conf(ctx, {
			p: {
				lines: ['retries = 3'],
				passive: { connect_failures: 2, base_ejection: '30s', max_ejected: '25%' },
				servers: [
					{ name: 'l1', address: l1.address }, { name: 'd1', address: `127.0.0.1:${d1}` },
					{ name: 'l2', address: l2.address }, { name: 'd2', address: `127.0.0.1:${d2}` },
				],
			},
		}),
	});
	const { statuses } = await spread(s.port, 40);
	assert.deepEqual([...new Set(statuses)], [200], 'every request served (retried past the dead servers)');
	// 25% of four: exactly one ejection, of one of the dead servers.
	const ej = [...s.errorLog().matchAll(/^(\S+) \[warn\] server p\/(d[12]) ejected for 30000 ms: 2 failed connects in a row \(ejection 1 in a row\)$/gm)];
	assert.equal(ej.length, 1, s.errorLog());
	assert.doesNotMatch(s.errorLog(), /server p\/l[12] ejected/);
	const [ejected, other] = ej[0][2] === 'd1' ? [d1, d2] : [d2, d1];
	// From then on the ejected one is not tried; the other dead one still
	// is: the cap keeps it in. Counted over a second batch of requests,
	// not by timestamps, which a slow (sanitizer) build blurs.
	const before = [connectFailures(s, ejected).length, connectFailures(s, other).length];
	const again = await spread(s.port, 12);
	assert.deepEqual([...new Set(again.statuses)], [200]);
	assert.equal(connectFailures(s, ejected).length - before[0], 0, 'the ejected server was tried');
	assert.ok(connectFailures(s, other).length - before[1] >= 2, 'the other dead server is still tried');
});

test('passive: 5xx answers eject a server when status_5xx is set, and not by default', async (t) => {
	const [a, b] = await backends(t, 'a', 'b');
	b.status = 500;
	const servers = [{ name: 'a', address: a.address }, { name: 'b', address: b.address }];
	const off = await startSluice({ t, config: (ctx) => conf(ctx, { p: { servers } }) });
	const r0 = await spread(off.port, 10);
	assert.deepEqual(r0.by, { a: 5, 'status 500': 5 });
	await off.stop();

	const s = await startSluice({ t, config: (ctx) => conf(ctx, { p: { passive: { status_5xx: 3 }, servers } }) });
	const r1 = await spread(s.port, 30);
	// b answers three 500s in a row (every other request), then is out.
	assert.deepEqual(r1.by, { a: 27, 'status 500': 3 });
	await s.waitForLog(/\[warn\] server p\/b ejected for 10000 ms: 3 5xx answers in a row \(ejection 1 in a row\)/, 1000);
});

test('slow start: a server back in service gets few requests at first, its full share later', async (t) => {
	const [a, b] = await backends(t, 'a', 'b');
	let bOk = false;
	b.healthy = () => bOk;
	const s = await startSluice({
		t,
		config: (ctx) => conf(ctx, {
			p: {
				lines: ['slow_start = 3s'],
				health: { ...CHECK, rise: 1, fall: 1 },
				servers: [{ name: 'a', address: a.address, weight: 100 }, { name: 'b', address: b.address, weight: 100 }],
			},
		}),
	});
	await s.waitForLog(/server p\/b is down: status 503/, 3000);
	bOk = true;
	await s.waitForLog(/server p\/b is up/, 3000);
	const upAt = Date.now();
	const first = (await spread(s.port, 40)).by;
	const firstMs = Date.now() - upAt;
	await sleep(Math.max(0, 3300 - (Date.now() - upAt)));
	const later = (await spread(s.port, 40)).by;
	// In its first few hundred ms, b weighs 10 to about 25 of 100.
	assert.ok((first.b || 0) <= 10, `first ${firstMs} ms: ${JSON.stringify(first)}`);
	assert.ok((first.b || 0) >= 1, `b is not left out: ${JSON.stringify(first)}`);
	assert.ok(later.b >= 17 && later.b <= 23, `after the ramp: ${JSON.stringify(later)}`);
});

test('socketio checks against real Socket.io servers; a server that does not open sessions is down', async (t) => {
	const servers = await startSioServers(['s1', 's2'], { t });
	const [plain] = await backends(t, 'plain');
	const sio = { type: 'socketio', interval: '300ms', timeout: '250ms', rise: 1, fall: 1 };
	const s = await startSluice({
		t,
		config: (ctx) => conf(ctx, {
			chat: { health: sio, servers: servers.map((x) => ({ name: x.name, address: x.address })) },
			other: { health: sio, servers: [{ name: 'plain', address: plain.address }] },
		}),
	});
	await s.waitForLog(/server other\/plain is down: the answer is not an Engine\.IO open packet \(1 failed check in a row\)/, 3000);
	// The checks reach the Socket.io servers as polling handshakes, and pass.
	await until(() => servers.every((x) => x.events.some((e) => e.type === 'req' &&
		e.url === '/socket.io/?EIO=4&transport=polling' && e.sid === null)), 3000, 'handshakes at both servers');
	await sleep(700);
	assert.doesNotMatch(s.errorLog(), /server chat\/s\d is down/);
	const killedAt = Date.now();
	await servers[1].kill('SIGKILL');
	const downAt = await logTime(s, /^(\S+) \[warn\] server chat\/s2 is down: connect\(127\.0\.0\.1:\d+\) failed: Connection refused/m, 3000);
	assert.ok(downAt - killedAt <= (300 + 250 + 250) * SLOW, `down ${downAt - killedAt} ms after the kill`);
	// A client handshake now goes to s1 only.
	for (let i = 0; i < 4; i++) {
		const r = await request(s.port, { path: '/socket.io/?EIO=4&transport=polling' });
		assert.equal(r.status, 200);
		assert.match(r.body.toString(), /^0\{.*"sid"/);
	}
});

test('no usable server: 503 at once with Retry-After, and a Socket.io handshake fails fast', async (t) => {
	const [a, b] = await backends(t, 'a', 'b');
	const s = await startSluice({
		t,
		config: (ctx) => conf(ctx, {
			chat: {
				health: { ...CHECK, interval: '500ms', timeout: '300ms', rise: 3, fall: 1 },
				servers: [{ name: 'a', address: a.address }, { name: 'b', address: b.address }],
			},
		}, { routes: [{ name: 'io', pool: 'chat', sticky: 'socketio' }] }),
	});
	await a.stop();
	await b.stop();
	await s.waitForLog(/server chat\/a is down/, 3000);
	await s.waitForLog(/server chat\/b is down/, 3000);
	const r = await request(s.port, { path: '/x' });
	assert.equal(r.status, 503);
	// interval x rise = 1.5 s, rounded up.
	assert.equal(r.headers['retry-after'], '2');
	assert.ok(r.elapsed < 300 * SLOW, `answered in ${r.elapsed} ms`);
	const hs = await request(s.port, { path: '/socket.io/?EIO=4&transport=polling&t=abc' });
	assert.equal(hs.status, 503);
	assert.ok(hs.elapsed < 300 * SLOW, `handshake answered in ${hs.elapsed} ms`);
	const lines = await s.waitForAccessLog(2);
	assert.deepEqual(lines.map((l) => [l.status, l.termination, l.server]), [[503, 'no_server', null], [503, 'no_server', null]]);

	// A real client sees a connect error quickly rather than hanging.
	const { io } = dep('socket.io-client');
	const client = io(s.url, { forceNew: true, reconnection: false, timeout: 10000, transports: ['polling'] });
	const t0 = Date.now();
	const err = await new Promise((resolve) => {
		client.once('connect_error', resolve);
		client.once('connect', () => resolve(null));
	});
	client.close();
	assert.ok(err, 'no connection');
	assert.ok(Date.now() - t0 < 1000 * SLOW, `connect_error after ${Date.now() - t0} ms`);

	// An outage does not flood the error log: 50 more 503s within a
	// second give at most one more line, which carries the count.
	for (let i = 0; i < 50; i++) assert.equal((await request(s.port, { path: `/n${i}` })).status, 503);
	const noServer = s.errorLog().match(/pool chat: no usable server: 503 \(\d+ since the last such line, \d+ in all\)/g) || [];
	assert.ok(noServer.length >= 1 && noServer.length <= 3, `no-server lines: ${noServer.length}`);
});

test('a reload keeps health by name: a down server stays down', async (t) => {
	const [a, b] = await backends(t, 'a', 'b');
	let bOk = false;
	b.healthy = () => bOk;
	const pools = (interval) => ({
		p: {
			health: { ...CHECK, interval },
			servers: [{ name: 'a', address: a.address }, { name: 'b', address: b.address }],
		},
	});
	const s = await startSluice({ t, config: (ctx) => conf(ctx, pools('200ms')) });
	await s.waitForLog(/server p\/b is down/, 3000);
	// Same servers, other settings.
	const fs = await import('node:fs');
	fs.writeFileSync(s.configPath, conf({ port: s.port, accessLogPath: s.accessLogPath }, pools('300ms')));
	s.kill('SIGHUP');
	await s.waitForLog(/configuration reloaded/, 3000);
	assert.deepEqual((await spread(s.port, 10)).by, { a: 10 });
	await sleep(800);
	assert.doesNotMatch(s.errorLog(), /server p\/b is up/);
	assert.deepEqual((await spread(s.port, 10)).by, { a: 10 });
	bOk = true;
	await s.waitForLog(/server p\/b is up: 2 passed checks in a row/, 3000);
	const { by } = await spread(s.port, 10);
	assert.equal(by.b, 5);
});

test('with tls = on, checks speak TLS with the pool\'s CA and server name', async (t) => {
	const pki = testPki();
	const good = await startHttpsBackend({ name: 'good', cert: pki.localhostEc, t });
	const rogue = await startHttpsBackend({ name: 'rogue', cert: pki.rogue, t });
	const s = await startSluice({
		t,
		config: (ctx) => conf(ctx, {
			p: {
				lines: ['tls = on', `tls_ca = "${pki.ca.cert}"`, 'tls_server_name = "localhost"'],
				health: { ...CHECK, path: '"/tls-check"', rise: 1, fall: 1 },
				servers: [{ name: 'good', address: good.address }, { name: 'rogue', address: rogue.address }],
			},
		}),
	});
	await s.waitForLog(/server p\/rogue is down: connect\(127\.0\.0\.1:\d+\) failed: certificate verify failed/, 3000);
	await until(() => good.requests.filter((r) => r.url === '/tls-check').length >= 2, 3000, 'checks at the good server');
	const check = good.requests.find((r) => r.url === '/tls-check');
	assert.equal(check.servername, 'localhost');
	assert.equal(check.alpn, 'http/1.1');
	assert.equal(check.headers['user-agent'], 'sluice-health-check');
	assert.equal(check.headers.host, 'localhost');
	assert.doesNotMatch(s.errorLog(), /server p\/good is down/);
});
