// Rate limits kept in Redis (redis { }): exact GCRA edges through a real
// redis-server, each on_error mode while Redis is killed and restarted
// under load, Redis slower than the budget (DEBUG SLEEP), Redis that hangs
// (SIGSTOP), Redis named by a host name, AUTH with a
// password and with an ACL user, and the fleet: three sluice processes
// sharing one Redis stay within 2% of the configured limit; limits of kind
// connections shared by two processes, through a replica's crash, a lost
// connection and a Redis restart; and a reload keeps an unchanged redis
// section and refuses a changed one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { SLOW, sleep, startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';
import { haveRedis, startRedis } from './lib/redis.mjs';
import { RawConn } from './lib/client.mjs';

const skip = haveRedis() ? false : 'redis-server not installed';

let prefixSeq = 0;
/** A key prefix of its own per sluice, so that tests never share a TAT. */
function freshPrefix() {
	return `t${process.pid}:${++prefixSeq}:`;
}

function config({ backend, redis, rate, per = '1s', burst = 0, redisExtra = '', workers = 2, prefix }) {
	return (ctx) => `workers = ${workers}
access_log = "${ctx.accessLogPath}"
shutdown_timeout = 1s
listener "web" { address = "127.0.0.1:${ctx.port}" }
pool "p" { server "a" { address = "127.0.0.1:${backend.port}" } }
ratelimit "lim" {
  rate = ${rate}
  per = ${per}
  burst = ${burst}
  headers = on
}
route "all" { pool = "p" ratelimit = "lim" }
redis {
  address = "${redis.address}"
  prefix = "${prefix ?? freshPrefix()}"
${redisExtra}
}
`;
}

/** One GET on a fresh connection: {status, headers, ms}. */
function get(url, { agent = false, timeout = 5000 } = {}) {
	return new Promise((resolve, reject) => {
		const t0 = performance.now();
		const req = http.get(url, { agent }, (res) => {
			res.resume();
			res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, ms: performance.now() - t0 }));
		});
		req.setTimeout(timeout, () => req.destroy(new Error('timeout')));
		req.on('error', reject);
	});
}

/**
 * Requests as fast as `concurrency` keep-alive clients go, spread over
 * urls, until stop() (or durationMs). Resolves with every answer's
 * {status, at} (at: ms since start) and the elapsed time.
 */
function hammer(urls, { concurrency = 8, durationMs = Infinity } = {}) {
	const agents = urls.map(() => new http.Agent({ keepAlive: true, maxSockets: concurrency }));
	const results = [];
	const t0 = performance.now();
	let stopped = false;
	const stopTimer = Number.isFinite(durationMs) ? setTimeout(() => { stopped = true; }, durationMs) : null;
	const one = (i) => new Promise((resolve) => {
		const u = i % urls.length;
		const req = http.get(urls[u], { agent: agents[u] }, (res) => {
			res.resume();
			res.on('end', () => resolve(res.statusCode));
		});
		req.on('error', () => resolve(0));
	});
	const loop = async (i) => {
		while (!stopped) {
			const status = await one(i);
			results.push({ status, at: performance.now() - t0 });
		}
	};
	const done = Promise.all(Array.from({ length: concurrency * urls.length }, (_, i) => loop(i)))
		.then(() => {
			clearTimeout(stopTimer);
			for (const a of agents) a.destroy();
			return { results, elapsed: performance.now() - t0 };
		});
	return { done, stop() { stopped = true; return done; } };
}

function countBy(results, from = 0, to = Infinity) {
	const c = {};
	for (const r of results) if (r.at >= from && r.at < to) c[r.status] = (c[r.status] || 0) + 1;
	return c;
}

function linesMatching(log, re) {
	return log.split('\n').filter((l) => re.test(l));
}

async function waitFor(fn, ms, what) {
	const deadline = Date.now() + ms;
	while (Date.now() < deadline) {
		if (await fn()) return;
		await sleep(20);
	}
	throw new Error(`timed out waiting for ${what}`);
}

test('exact edges through Redis: the burst, then one per interval', { skip, timeout: 60000 }, async (t) => {
	const backend = await startBackend();
	t.after(() => backend.close());
	const redis = await startRedis({ t });
	const prefix = freshPrefix();
	// T = 200ms, burst 4: five at once, then one each 200ms.
	// One worker, connected first: a request that on_error (local) answered
	// would not be counted in Redis, and the edges would move by one.
	const s = await startSluice({ t, config: config({ backend, redis, rate: 5, burst: 4, prefix, workers: 1 }) });
	await waitFor(() => /redis 127\.0\.0\.1:\d+ connected/.test(s.errorLog()), 5000, 'the connection');

	for (let i = 0; i < 5; i++) {
		const r = await get(`${s.url}/x`);
		assert.equal(r.status, 200, `request ${i + 1} of the burst`);
		assert.match(r.headers.ratelimit, /^"lim";r=\d+;t=\d+$/);
	}
	const denied = await get(`${s.url}/x`);
	assert.equal(denied.status, 429);
	assert.equal(denied.headers['retry-after'], '1');
	assert.equal(denied.headers['ratelimit-policy'], '"lim";q=5;w=1');
	// The TAT lives in Redis under the prefix, with an expiry.
	const keys = await redis.cmd('KEYS', `${prefix}*`);
	assert.deepEqual(keys, [`${prefix}lim:127.0.0.1`]);
	const pttl = await redis.cmd('PTTL', keys[0]);
	assert.ok(pttl > 0 && pttl <= 1100, `PTTL ${pttl}`);

	// Steady rate: one more each T, never two.
	for (let k = 0; k < 3; k++) {
		await sleep(230);
		assert.equal((await get(`${s.url}/x`)).status, 200, `after interval ${k + 1}`);
		assert.equal((await get(`${s.url}/x`)).status, 429, `second within interval ${k + 1}`);
	}
	assert.match(s.errorLog(), /redis 127\.0\.0\.1:\d+ connected/);
});

test('Redis named by a host name: resolved off the loop, and the limit holds through it', { skip, timeout: 60000 }, async (t) => {
	const backend = await startBackend();
	t.after(() => backend.close());
	const redis = await startRedis({ t });
	const prefix = freshPrefix();
	const named = { address: `localhost:${redis.port}` };
	const s = await startSluice({ t, config: config({ backend, redis: named, rate: 5, burst: 2, per: '1m', prefix }) });

	// Until Redis is reached, on_error (local) answers; then the TAT is
	// in Redis under the prefix.
	await waitFor(async () => {
		assert.ok([200, 429].includes((await get(`${s.url}/x`)).status));
		return (await redis.cmd('KEYS', `${prefix}*`)).length > 0;
	}, 10000, 'the limit kept in Redis');
	assert.deepEqual(await redis.cmd('KEYS', `${prefix}*`), [`${prefix}lim:127.0.0.1`]);
	// Redis's budget of 3 (rate 5 a minute, burst 2) runs out and stays out.
	await waitFor(async () => (await get(`${s.url}/x`)).status === 429, 10000, 'a 429');
	assert.equal((await get(`${s.url}/x`)).status, 429);
	assert.match(s.errorLog(), /redis localhost:\d+ connected/);
});

test('Redis named by a host name that does not resolve: on_error answers, and the log says why', { skip, timeout: 60000 }, async (t) => {
	const backend = await startBackend();
	t.after(() => backend.close());
	const named = { address: 'redis.invalid:6379' };
	const s = await startSluice({
		t, config: config({ backend, redis: named, rate: 1, per: '1m', redisExtra: 'on_error = allow' }),
	});

	// However long the system's resolver takes, requests are answered.
	for (let i = 0; i < 5; i++) assert.equal((await get(`${s.url}/x`)).status, 200);
	await waitFor(() => /redis redis\.invalid:6379 unreachable: cannot resolve redis\.invalid: .+; on_error = allow/.test(s.errorLog()),
		30000, 'the resolution failure in the log');
	assert.equal((await get(`${s.url}/x`)).status, 200);
});

for (const mode of ['allow', 'deny', 'local']) {
	test(`Redis killed and restarted under load: on_error = ${mode}`, { skip, timeout: 60000 }, async (t) => {
		const backend = await startBackend();
		t.after(() => backend.close());
		const redis = await startRedis({ t });
		// 20 a second with a burst of 5: far below what the clients send.
		const s = await startSluice({
			t, config: config({ backend, redis, rate: 20, burst: 5, redisExtra: `  on_error = ${mode}\n  timeout = 50ms` }),
		});
		const load = hammer([`${s.url}/x`], { concurrency: 4 });
		await sleep(1000);
		const killedAt = performance.now();
		await redis.stop();
		await waitFor(() => /unreachable/.test(s.errorLog()), 3000 * SLOW, 'the unreachable line');
		const downFrom = performance.now() - killedAt + 1000 + 100;
		await sleep(1500);
		const downTo = performance.now() - killedAt + 1000;
		await redis.start();
		await waitFor(() => /reachable again/.test(s.errorLog()), 8000 * SLOW, 'the reachable again line');
		const upAt = performance.now() - killedAt + 1000;
		await sleep(1000);
		const { results } = await load.stop();

		const down = countBy(results, downFrom, downTo);
		const after = countBy(results, upAt + 200, Infinity);
		const downTotal = Object.values(down).reduce((a, b) => a + b, 0);
		assert.ok(downTotal > 50, `load while down: ${JSON.stringify(down)}`);
		const secs = (downTo - downFrom) / 1000;
		if (mode === 'allow') {
			assert.deepEqual(Object.keys(down), ['200'], `allow while down: ${JSON.stringify(down)}`);
		} else if (mode === 'deny') {
			assert.deepEqual(Object.keys(down), ['429'], `deny while down: ${JSON.stringify(down)}`);
		} else {
			// The in-process limiter: its own burst and rate while Redis is away.
			assert.ok(down[429] > 0, `local while down: ${JSON.stringify(down)}`);
			assert.ok(down[200] <= 6 + 20 * secs + 2, `local while down: ${JSON.stringify(down)}`);
		}
		// Back to Redis's limit, by itself: most requests are 429 again, some pass.
		assert.ok(after[200] > 0 && after[429] > after[200], `after recovery: ${JSON.stringify(after)}`);
		const log = s.errorLog();
		assert.equal(linesMatching(log, /unreachable/).length, 1, log);
		assert.equal(linesMatching(log, /reachable again/).length, 1, log);
		assert.match(log, new RegExp(`unreachable: .*; on_error = ${mode}`));
	});
}

test('Redis slower than the budget (DEBUG SLEEP): on_error answers in time', { skip, timeout: 60000 }, async (t) => {
	const backend = await startBackend();
	t.after(() => backend.close());
	const redis = await startRedis({ t });
	// High limit (never reached) and lease_max = 1: every request asks Redis.
	const s = await startSluice({
		t, config: config({ backend, redis, rate: 100000, burst: 0, workers: 1,
			redisExtra: '  on_error = deny\n  timeout = 20ms\n  lease_max = 1' }),
	});
	assert.equal((await get(`${s.url}/x`)).status, 200);
	const sleeping = redis.cmd('DEBUG', 'SLEEP', '0.5');
	await sleep(50);
	const during = [];
	for (let i = 0; i < 5; i++) during.push(await get(`${s.url}/x`));
	await sleeping;
	for (const r of during) {
		assert.equal(r.status, 429, 'on_error = deny during the sleep');
		assert.ok(r.ms < 150 * SLOW, `answered within the budget, not after the sleep: ${r.ms}ms`);
	}
	await waitFor(async () => (await get(`${s.url}/x`)).status === 200, 2000, 'answers in time again');
	// The late answer's token was a lease; the next ones ask Redis again.
	for (let i = 0; i < 3; i++) assert.equal((await get(`${s.url}/x`)).status, 200);
	const log = s.errorLog();
	assert.equal(linesMatching(log, /slow: no answer within 20ms; on_error = deny/).length, 1, log);
	assert.equal(linesMatching(log, /answers within 20ms again/).length, 1, log);
});

test('Redis that hangs (SIGSTOP): the connection is dropped after 5 s without an answer, and made again once it is back', { skip, timeout: 60000 }, async (t) => {
	const backend = await startBackend();
	t.after(() => backend.close());
	const redis = await startRedis({ t });
	const prefix = freshPrefix();
	const s = await startSluice({
		t, config: config({ backend, redis, rate: 100000, workers: 1, prefix,
			redisExtra: '  on_error = allow\n  lease_max = 1' }),
	});
	await waitFor(() => /redis 127\.0\.0\.1:\d+ connected/.test(s.errorLog()), 5000, 'the connection');
	assert.equal((await get(`${s.url}/x`)).status, 200);

	redis.proc.kill('SIGSTOP');
	t.after(() => redis.proc.kill('SIGCONT'));
	// Requests go on, decided by on_error; the probe finds Redis silent.
	for (let i = 0; i < 3; i++) assert.equal((await get(`${s.url}/x`)).status, 200);
	await waitFor(() => /redis 127\.0\.0\.1:\d+ unreachable: no answer for \d+ ms; on_error = allow/.test(s.errorLog()),
		15000, 'the hang noticed');
	assert.equal((await get(`${s.url}/x`)).status, 200);

	redis.proc.kill('SIGCONT');
	await waitFor(() => /redis 127\.0\.0\.1:\d+ reachable again/.test(s.errorLog()), 20000, 'the connection made again');
	await redis.cmd('DEL', `${prefix}lim:127.0.0.1`);
	await waitFor(async () => {
		await get(`${s.url}/x`);
		return (await redis.cmd('KEYS', `${prefix}*`)).length > 0;
	}, 5000, 'the limit kept in Redis again');
});

test('AUTH with a password from the environment, and with an ACL user', { skip, timeout: 60000 }, async (t) => {
	const backend = await startBackend();
	t.after(() => backend.close());
	const redis = await startRedis({ t, args: ['--requirepass', 'pw-one'] });
	redis.auth = ['pw-one'];
	const withPass = await startSluice({
		t, env: { SLUICE_TEST_REDIS_PW: 'pw-one' },
		config: config({ backend, redis, rate: 1, per: '1m', burst: 1,
			redisExtra: '  password = "${SLUICE_TEST_REDIS_PW}"\n  on_error = allow' }),
	});
	const codes = [];
	for (let i = 0; i < 3; i++) codes.push((await get(`${withPass.url}/x`)).status);
	assert.deepEqual(codes, [200, 200, 429]);
	assert.match(withPass.errorLog(), /connected/);

	assert.equal(await redis.cmd('ACL', 'SETUSER', 'limiter', 'on', '>pw-two', '~*', '+@all'), 'OK');
	const withUser = await startSluice({
		t, config: config({ backend, redis, rate: 1, per: '1m', burst: 0,
			redisExtra: '  user = limiter\n  password = "pw-two"\n  on_error = allow' }),
	});
	assert.equal((await get(`${withUser.url}/x`)).status, 200);
	assert.equal((await get(`${withUser.url}/x`)).status, 429);

	// A wrong password: said once, and on_error applies.
	const wrong = await startSluice({
		t, config: config({ backend, redis, rate: 1, per: '1m', burst: 0,
			redisExtra: '  password = "nope"\n  on_error = allow' }),
	});
	for (let i = 0; i < 3; i++) assert.equal((await get(`${wrong.url}/x`)).status, 200);
	await sleep(300);
	const log = wrong.errorLog();
	assert.equal(linesMatching(log, /unreachable: AUTH failed/).length, 1, log);
	assert.doesNotMatch(log, /nope/);
});

test('fleet: three sluice processes share one Redis within 2% of the limit', { skip, timeout: 60000 }, async (t) => {
	const backend = await startBackend();
	t.after(() => backend.close());
	const redis = await startRedis({ t });
	const prefix = freshPrefix();
	const rate = 1000, burst = 10;
	const fleet = [];
	for (let i = 0; i < 3; i++) {
		// A budget well above any round trip of a loaded test machine: this
		// measures what Redis and the leases decide, not on_error's
		// per-process fallback (which knows nothing of the other replicas).
		fleet.push(await startSluice({
			t, config: config({ backend, redis, rate, per: '10s', burst, prefix, redisExtra: '  timeout = 200ms' }),
		}));
	}
	const durationMs = 10000;
	const { results, elapsed } = await hammer(fleet.map((s) => `${s.url}/x`), { concurrency: 8, durationMs }).done;
	const c = countBy(results);
	const allowed = c[200] || 0;
	// GCRA over the run: burst + 1 at once, then one each T = 10ms.
	const expected = burst + 1 + Math.floor(elapsed / (10000 / rate));
	const err = (allowed - expected) / expected;
	console.log(`fleet: ${results.length} requests in ${elapsed.toFixed(0)}ms, ${allowed} allowed, `
		+ `expected ${expected} (${(err * 100).toFixed(2)}%), ${c[429] || 0} denied`);
	assert.ok(results.length > 3 * allowed, `the load was well above the limit: ${JSON.stringify(c)}`);
	assert.ok(Math.abs(err) <= 0.02, `allowed ${allowed}, expected ${expected}: ${(err * 100).toFixed(2)}%`);
	for (const s of fleet) {
		assert.ok(s.accessLog().some((l) => l.status === 200), 'every replica let some through');
		assert.doesNotMatch(s.errorLog(), /slow|unreachable/);
	}
});

test('reload: the same redis section is kept, a changed one is refused', { skip, timeout: 60000 }, async (t) => {
	const backend = await startBackend();
	t.after(() => backend.close());
	const redis = await startRedis({ t });
	// One worker, connected before the first request: otherwise on_error
	// (local) may answer the first and Redis the second, each with a full budget.
	const s = await startSluice({ t, config: config({ backend, redis, rate: 1, per: '1m', burst: 0, workers: 1 }) });
	await waitFor(() => /redis 127\.0\.0\.1:\d+ connected/.test(s.errorLog()), 5000, 'the connection');
	assert.equal((await get(`${s.url}/x`)).status, 200);
	assert.equal((await get(`${s.url}/x`)).status, 429);

	// Same redis section, another limit: taken, and still counted in Redis.
	fs.writeFileSync(s.configPath, s.config.replace('burst = 0', 'burst = 5'));
	process.kill(s.pid, 'SIGHUP');
	await waitFor(() => /configuration reloaded/.test(s.errorLog()), 5000, 'the reload');
	assert.equal((await get(`${s.url}/x`)).status, 200);

	fs.writeFileSync(s.configPath, s.config.replace(/timeout = \d+ms\n|prefix = /, (m) => `timeout = 50ms\n  ${m}`));
	process.kill(s.pid, 'SIGHUP');
	await waitFor(() => /the redis section changed/.test(s.errorLog()), 5000, 'the refusal');
	assert.match(s.errorLog(), /reload of .* refused, the running configuration stays: the redis section changed/);
});

// ------------------------------------------------- kind = connections

function connConfig({ backend, redis, rate, prefix, workers = 2, timeout = '500ms', redisExtra = '' }) {
	return (ctx) => `workers = ${workers}
access_log = "${ctx.accessLogPath}"
shutdown_timeout = 1s
listener "web" { address = "127.0.0.1:${ctx.port}" }
pool "p" { server "a" { address = "127.0.0.1:${backend.port}" } }
ratelimit "conns" { rate = ${rate} kind = connections }
route "all" { pool = "p" ratelimit = "conns" }
redis {
  address = "${redis.address}"
  prefix = "${prefix}"
  timeout = ${timeout}
${redisExtra}
}
`;
}

/** A keep-alive connection that has had one answer: {c, status}. */
async function openConn(t, s) {
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('GET /c HTTP/1.1\r\nHost: x\r\n\r\n');
	const [r] = await c.waitResponses(1);
	if (r.status === 429) {
		assert.equal(r.headers.connection, 'close');
		assert.equal(r.headers['ratelimit-policy'], '"conns";q=3');
		assert.ok(await c.waitClose(), 'a refused connection is closed');
	}
	return { c, status: r.status };
}

/** Statuses of n new connections to s, kept open. */
async function openMany(t, s, n) {
	const out = [];
	for (let i = 0; i < n; i++) out.push(await openConn(t, s));
	return out;
}

/** Until a new connection to s is let in (each try that is refused closes). */
async function waitAdmitted(t, s, ms, what) {
	let got = null;
	await waitFor(async () => {
		const o = await openConn(t, s);
		if (o.status === 200) got = o;
		return got !== null;
	}, ms, what);
	return got;
}

/** The count hash's fields whose worker is alive (name -> connections). */
async function connFields(redis, prefix) {
	const flat = await redis.cmd('HGETALL', `${prefix}conns#conns:127.0.0.1`);
	const fields = {};
	for (let i = 0; i < flat.length; i += 2) {
		// "WORKER.EPOCH", alive while PREFIX#alive:WORKER says "EPOCH MS".
		const [, worker, epoch] = /^(.+)\.(\d+)$/.exec(flat[i]);
		const alive = await redis.cmd('GET', `${prefix}#alive:${worker}`);
		if (typeof alive === 'string' && alive.split(' ')[0] === epoch) fields[flat[i]] = Number(flat[i + 1]);
	}
	return fields;
}

const sum = (fields) => Object.values(fields).reduce((x, y) => x + y, 0);

/** Until Redis counts n live connections, all written on a new Redis connection. */
async function waitRecounted(redis, prefix, n) {
	await waitFor(async () => {
		const f = await connFields(redis, prefix);
		return sum(f) === n && Object.keys(f).every((name) => !/\.1$/.test(name));
	}, 8000 * SLOW, `Redis to count ${n} connection(s) again`);
}

async function twoReplicas(t, { rate = 3, a: aOpts = {} } = {}) {
	const backend = await startBackend();
	t.after(() => backend.close());
	const redis = await startRedis({ t });
	const prefix = freshPrefix();
	const a = await startSluice({ t, config: connConfig({ backend, redis, rate, prefix, ...aOpts }) });
	const b = await startSluice({ t, config: connConfig({ backend, redis, rate, prefix }) });
	return { redis, prefix, a, b };
}

test('kind = connections: two replicas share one count through Redis', { skip, timeout: 60000 }, async (t) => {
	const { redis, prefix, a, b } = await twoReplicas(t);
	const onA = await openMany(t, a, 2);
	assert.deepEqual(onA.map((o) => o.status), [200, 200]);
	const onB = await openConn(t, b);
	assert.equal(onB.status, 200);
	// Three open across the two processes: the fourth is refused by either.
	assert.equal((await openConn(t, b)).status, 429);
	assert.equal((await openConn(t, a)).status, 429);
	// A counted connection's next requests are not counted again.
	await onA[0].c.write('GET /again HTTP/1.1\r\nHost: x\r\n\r\n');
	assert.equal((await onA[0].c.waitResponses(2))[1].status, 200);
	// One field per worker that holds connections, summing to what is open.
	const fields = await connFields(redis, prefix);
	for (const f of Object.keys(fields)) assert.match(f, /^[0-9a-f]{16}\.\d+\.1$/);
	assert.equal(sum(fields), 3, JSON.stringify(fields));
	assert.ok(await redis.cmd('PTTL', `${prefix}conns#conns:127.0.0.1`) > 0, 'the hash expires by itself');

	// Closing one on A frees a place for B.
	onA[0].c.destroy();
	await waitAdmitted(t, b, 3000, 'a place freed on A to be usable from B');
	assert.equal((await openConn(t, a)).status, 429);
	// Closed ones are not counted any more.
	for (const o of [onA[1], onB]) o.c.destroy();
	await waitFor(async () => sum(await connFields(redis, prefix)) === 1, 3000, 'the counts to drop');
});

test('kind = connections: a crashed replica stops counting within seconds', { skip, timeout: 60000 }, async (t) => {
	const { a, b } = await twoReplicas(t);
	assert.deepEqual((await openMany(t, a, 3)).map((o) => o.status), [200, 200, 200]);
	assert.equal((await openConn(t, b)).status, 429);
	a.kill('SIGKILL');
	await a.waitExit(5000);
	// Its connections are gone with it; its count goes once it has been
	// silent for 5 s.
	const t0 = Date.now();
	await waitAdmitted(t, b, 12000 * SLOW, 'the crashed replica\'s count to stop counting');
	const waited = Date.now() - t0;
	assert.ok(waited >= 2500, `the count of a silent replica holds for a while: ${waited} ms`);
	// Each of A's two workers had its own alive key, refreshed at its own
	// beat: the other's places come free within a second more.
	for (let i = 0; i < 2; i++) await waitAdmitted(t, b, 3000 * SLOW, `place ${i + 2} of the crashed replica`);
	assert.equal((await openConn(t, b)).status, 429);
});

test('kind = connections: a lost Redis connection does not count twice', { skip, timeout: 60000 }, async (t) => {
	const { redis, prefix, a, b } = await twoReplicas(t);
	const held = await openMany(t, a, 2);
	assert.deepEqual(held.map((o) => o.status), [200, 200]);
	// Every client connection of Redis is cut: each worker reconnects and
	// writes its counts under a new name.
	await redis.cmd('CLIENT', 'KILL', 'TYPE', 'normal');
	await waitFor(() => /reachable again/.test(a.errorLog()) && /reachable again/.test(b.errorLog()),
		8000 * SLOW, 'both replicas back on Redis');
	held[0].c.destroy();
	await waitRecounted(redis, prefix, 1);
	assert.deepEqual((await openMany(t, b, 2)).map((o) => o.status), [200, 200]);
	assert.equal((await openConn(t, b)).status, 429);
});

test('kind = connections: after a Redis restart the replicas count again what they hold', { skip, timeout: 60000 }, async (t) => {
	const { redis, prefix, a, b } = await twoReplicas(t);
	const held = await openMany(t, a, 2);
	assert.deepEqual(held.map((o) => o.status), [200, 200]);
	await redis.stop();
	await waitFor(() => /unreachable/.test(a.errorLog()), 3000 * SLOW, 'A to see Redis go');
	// Closed while Redis is away: not counted once it is back.
	held[0].c.destroy();
	await sleep(100);
	await redis.start();
	await waitFor(() => /reachable again/.test(a.errorLog()) && /reachable again/.test(b.errorLog()),
		8000 * SLOW, 'both replicas back on Redis');
	await waitRecounted(redis, prefix, 1);
	assert.deepEqual((await openMany(t, b, 2)).map((o) => o.status), [200, 200]);
	assert.equal((await openConn(t, b)).status, 429);
});

test('kind = connections: a replica that stops cleanly frees its places at once', { skip, timeout: 60000 }, async (t) => {
	const { a, b } = await twoReplicas(t);
	assert.deepEqual((await openMany(t, a, 3)).map((o) => o.status), [200, 200, 200]);
	assert.equal((await openConn(t, b)).status, 429);
	const { code } = await a.stop('SIGTERM', 10000);
	assert.equal(code, 0);
	// No wait for a silent replica's counts to age out: they are gone.
	assert.deepEqual((await openMany(t, b, 3)).map((o) => o.status), [200, 200, 200]);
	assert.equal((await openConn(t, b)).status, 429);
});

test('kind = connections: SCRIPT FLUSH is recovered from, and the counts stay right', { skip, timeout: 60000 }, async (t) => {
	const { redis, prefix, a, b } = await twoReplicas(t);
	const held = await openMany(t, a, 2);
	assert.deepEqual(held.map((o) => o.status), [200, 200]);
	await redis.cmd('SCRIPT', 'FLUSH');
	// Released into an empty script cache: NOSCRIPT, and then written whole.
	held[0].c.destroy();
	assert.equal((await openConn(t, b)).status, 200);
	await waitFor(async () => sum(await connFields(redis, prefix)) === 2, 5000 * SLOW, 'A\'s release to be counted');
	assert.equal((await openConn(t, b)).status, 200);
	assert.equal((await openConn(t, b)).status, 429);
	assert.doesNotMatch(a.errorLog() + b.errorLog(), /unexpected answer/);
});

test('kind = connections: a connection let in by on_error and closed before Redis answered leaves no count', { skip, timeout: 60000 }, async (t) => {
	const { redis, prefix, a, b } = await twoReplicas(t, { a: { timeout: '50ms', redisExtra: '  on_error = allow' } });
	const onB = await openMany(t, b, 3);
	assert.deepEqual(onB.map((o) => o.status), [200, 200, 200]);
	// Redis answers nobody for a second: A lets the connection in after
	// 50 ms, and it closes before Redis refuses it.
	await redis.cmd('CLIENT', 'PAUSE', '1000', 'ALL');
	const late = await openConn(t, a);
	assert.equal(late.status, 200);
	late.c.destroy();
	await sleep(1500);
	await waitFor(async () => sum(await connFields(redis, prefix)) === 3, 5000 * SLOW, 'the counts to settle');
	await sleep(300);
	assert.equal(sum(await connFields(redis, prefix)), 3, JSON.stringify(await connFields(redis, prefix)));
	onB[0].c.destroy();
	await waitAdmitted(t, a, 3000, 'the place B freed');
	assert.equal((await openConn(t, a)).status, 429);
});
