// Graceful stop on SIGTERM/SIGINT: in-flight exchanges finish, listeners
// close, idle connections are closed, shutdown_timeout bounds the wait.
// Also the thread layout these rely on: with workers = 1 the one worker
// runs on the main thread's loop.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { SLOW, sleep, startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';
import { RawConn, request } from './lib/client.mjs';

async function waitUntil(pred, timeout, what) {
	const end = Date.now() + timeout * SLOW;
	while (!pred()) {
		if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
		await sleep(20);
	}
}

function tryConnect(port) {
	return new Promise((resolve) => {
		const s = net.connect({ host: '127.0.0.1', port });
		const timer = setTimeout(() => { s.destroy(); resolve('timeout'); }, 1000);
		s.once('connect', () => {
			// Accepted by the kernel: see whether anything answers.
			s.write('GET /echo HTTP/1.1\r\nHost: late.test\r\n\r\n');
			let data = '';
			s.on('data', (d) => { data += d; });
			s.once('close', () => { clearTimeout(timer); resolve(data ? `answered: ${data.slice(0, 40)}` : 'accepted-then-closed'); });
			s.once('error', () => {});
		});
		s.once('error', (e) => { clearTimeout(timer); resolve(e.code); });
	});
}

test('SIGTERM: 10 in-flight requests all complete with 200, exit code 0', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], workers: 2, shutdownTimeout: '10s', t });
	const reqs = [];
	for (let i = 0; i < 10; i++) reqs.push(request(s.port, { path: `/delay/1000?i=${i}`, timeout: 10000 }).catch((e) => e));
	await waitUntil(() => b.requests.length === 10, 3000, '10 requests at the backend');
	await sleep(200);
	s.kill('SIGTERM');
	const results = await Promise.all(reqs);
	for (const [i, r] of results.entries()) {
		assert.ok(!(r instanceof Error), `request ${i} failed: ${r.message}`);
		assert.equal(r.status, 200, `request ${i}`);
	}
	const exit = await s.waitExit(5000);
	assert.equal(exit.forced, false, 'exited on its own');
	assert.equal(exit.code, 0);
});

test('SIGINT stops gracefully too', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], t });
	const p = request(s.port, { path: '/delay/500' });
	await waitUntil(() => b.requests.length === 1, 3000, 'request at the backend');
	s.kill('SIGINT');
	assert.equal((await p).status, 200);
	const exit = await s.waitExit(5000);
	assert.equal(exit.code, 0);
	assert.equal(exit.forced, false);
});

test('after SIGTERM new connections are refused', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], shutdownTimeout: '10s', t });
	const inflight = request(s.port, { path: '/delay/1500', timeout: 10000 });
	await waitUntil(() => b.requests.length === 1, 3000, 'request at the backend');
	s.kill('SIGTERM');
	await sleep(300);
	assert.equal(s.exitInfo, null, 'still running while a request is in flight');
	const outcome = await tryConnect(s.port);
	assert.equal(outcome, 'ECONNREFUSED');
	assert.equal((await inflight).status, 200);
	const exit = await s.waitExit(5000);
	assert.equal(exit.code, 0);
	assert.equal(b.requests.length, 1, 'the late request was never forwarded');
});

test('SIGTERM closes an idle keep-alive client connection and exits at once', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], shutdownTimeout: '10s', timeouts: { client_idle: '60s' }, t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('GET /echo HTTP/1.1\r\nHost: idle.test\r\n\r\n');
	const [r] = await c.waitResponses(1);
	assert.equal(r.status, 200);
	const t0 = Date.now();
	s.kill('SIGTERM');
	assert.ok(await c.waitClose(3000), 'idle connection closed');
	const exit = await s.waitExit(5000);
	assert.equal(exit.code, 0);
	assert.ok(Date.now() - t0 < 2000 * SLOW, `exited promptly (${Date.now() - t0} ms), not after shutdown_timeout`);
});

test('a keep-alive client mid-request during shutdown gets its response, then the connection closes', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], shutdownTimeout: '10s', t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('GET /delay/800 HTTP/1.1\r\nHost: ka.test\r\n\r\n');
	await waitUntil(() => b.requests.length === 1, 3000, 'request at the backend');
	s.kill('SIGTERM');
	const [r] = await c.waitResponses(1, { timeout: 5000 });
	assert.equal(r.status, 200);
	assert.ok(await c.waitClose(3000), 'closed after the in-flight response');
	assert.equal((await s.waitExit(5000)).code, 0);
});

test('shutdown_timeout bounds the wait: a hanging request does not keep sluice alive', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], shutdownTimeout: '1s', timeouts: { response_header: '30s' }, t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('GET /hang HTTP/1.1\r\nHost: hang.test\r\n\r\n');
	await waitUntil(() => b.requests.length === 1, 3000, 'request at the backend');
	const t0 = Date.now();
	s.kill('SIGTERM');
	const exit = await s.waitExit(10000);
	const dt = Date.now() - t0;
	assert.equal(exit.forced, false, 'exited on its own');
	assert.ok(dt >= 900, `waited for shutdown_timeout (${dt} ms)`);
	assert.ok(dt <= 1500 + 1000 * SLOW, `exited within ~1.5 s (${dt} ms)`);
	assert.equal(exit.code, 0);
	assert.ok(await c.waitClose(1000), 'client connection closed');
	const line = s.accessLog().find((x) => x.path === '/hang');
	assert.ok(line, 'the cut exchange is logged');
	assert.equal(line.termination, 'shutdown');
});

test('a second SIGTERM ends a hanging exchange now instead of after shutdown_timeout', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], shutdownTimeout: '30s', timeouts: { response_header: '60s' }, t });
	const c = await RawConn.open(s.port);
	t.after(() => c.destroy());
	await c.write('GET /hang HTTP/1.1\r\nHost: hang.test\r\n\r\n');
	await waitUntil(() => b.requests.length === 1, 3000, 'request at the backend');
	s.kill('SIGTERM');
	await sleep(700);
	assert.equal(s.exitInfo, null, 'still running after the first SIGTERM (the exchange is in flight)');
	assert.ok(!c.closed, 'the in-flight client connection is kept');
	const t0 = Date.now();
	s.kill('SIGTERM');
	const exit = await s.waitExit(5000);
	const dt = Date.now() - t0;
	assert.equal(exit.forced, false, `exited on its own (${dt} ms)`);
	assert.ok(dt <= 2000 * SLOW, `exited within 2 s of the second SIGTERM (${dt} ms)`);
	assert.equal(exit.code, 0);
	assert.ok(await c.waitClose(1000), 'client connection closed');
	const line = s.accessLog().find((x) => x.path === '/hang');
	assert.ok(line, 'the cut exchange is logged');
	assert.equal(line.termination, 'shutdown');
});

const threads = (pid) => fs.readdirSync(`/proc/${pid}/task`).length;

test('workers = 1 proxies, reloads and stops gracefully on one thread; workers = 2 runs two more', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({ backends: [b], shutdownTimeout: '10s', t });
	assert.equal(threads(s.pid), 1, 'one thread in all');
	assert.equal((await request(s.port, { path: '/x' })).status, 200);
	await s.reload((text) => text.replace('shutdown_timeout = 10s', 'shutdown_timeout = 9s'));
	assert.equal((await request(s.port, { path: '/y' })).status, 200);
	assert.equal(threads(s.pid), 1, 'still one thread after a reload');
	const inflight = request(s.port, { path: '/delay/800', timeout: 10000 });
	await waitUntil(() => b.requests.length === 3, 3000, 'the third request at the backend');
	s.kill('SIGTERM');
	assert.equal((await inflight).status, 200);
	const exit = await s.waitExit(5000);
	assert.equal(exit.forced, false, 'exited on its own');
	assert.equal(exit.code, 0);

	const s2 = await startSluice({ backends: [b], workers: 2, t });
	// Listening starts before the worker threads do.
	await s2.waitForLog(/started with 2 workers/);
	assert.equal(threads(s2.pid), 3, 'the main thread and one per worker');
	assert.equal((await request(s2.port, { path: '/z' })).status, 200);
});
