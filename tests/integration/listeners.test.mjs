// Listening sockets: the backlog each one is given, and what a reload does
// to them: a listener added starts accepting, one removed stops while its
// established connections go on, a kept one keeps its socket (and what is
// queued on it), and one that cannot be opened refuses the whole reload.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { freePort, startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';
import { getBackend as get, requestJson } from './lib/client.mjs';

/** The listen() backlog of each socket listening on port (ss's Send-Q). */
function backlogs(port) {
	const out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
	return out.trim().split('\n').filter(Boolean).map((l) => Number(l.trim().split(/\s+/)[2])).sort();
}

test('each worker listens with the configured backlog', async (t) => {
	const backend = await startBackend({ t });
	const s = await startSluice({
		t, workers: 2, backends: [backend], listen: [{ name: 'web', host: '127.0.0.1', backlog: 300 }],
	});
	assert.deepEqual(backlogs(s.port), [300, 300]);
});

/** Whether a TCP connect to port succeeds. */
function connects(port) {
	return new Promise((resolve) => {
		const c = net.connect({ host: '127.0.0.1', port });
		c.once('connect', () => { c.destroy(); resolve(true); });
		c.once('error', () => resolve(false));
		c.setTimeout(2000, () => { c.destroy(); resolve(false); });
	});
}

/** sluice (2 workers) with listeners "web" and "admin-web", pools "a" and "b", routed to "a". */
async function setup(t) {
	const a = await startBackend({ name: 'a', t });
	const b = await startBackend({ name: 'b', t });
	const pools = { a: { servers: [{ name: 'a', backend: a }] }, b: { servers: [{ name: 'b', backend: b }] } };
	return startSluice({
		t, workers: 2, pools, routes: [{ name: 'all', pool: 'a' }],
		listen: [{ name: 'web', host: '127.0.0.1' }, { name: 'second', host: '127.0.0.1' }],
	});
}

const toPoolB = (text) => text.replace(/pool = "a" \}/, 'pool = "b" }');

test('a reload adds a listener: it accepts at once, the others go on', async (t) => {
	const s = await setup(t);
	const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
	t.after(() => agent.destroy());
	const first = await get(s.port, agent);
	const port = await freePort();
	assert.equal(await connects(port), false);

	const log = await s.reload((text) => toPoolB(text) +
		`listener "third" {\n\taddress = "127.0.0.1:${port}"\n\tbacklog = 200\n}\n`);
	assert.match(log, new RegExp(`listener "third" on 127\\.0\\.0\\.1:${port} added`));
	assert.doesNotMatch(log, /removed/);
	// Every worker accepts on the new address, with its backlog, under the new generation.
	assert.deepEqual(backlogs(port), [200, 200]);
	for (let i = 0; i < 4; i++) assert.equal((await requestJson(port, { path: '/' })).json.backend, 'b');
	assert.equal((await requestJson(s.listeners[1].port, { path: '/' })).json.backend, 'b');
	// The established connection on the first listener keeps its generation.
	const again = await get(s.port, agent);
	assert.equal(again.port, first.port);
	assert.equal(again.backend, 'a');
});

test('a reload removes a listener: new connections are refused, established ones go on', async (t) => {
	const s = await setup(t);
	const second = s.listeners[1].port;
	const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
	t.after(() => agent.destroy());
	const first = await get(second, agent);

	const log = await s.reload((text) => toPoolB(text).replace(/listener "second" \{[^}]*\}\n/, ''));
	assert.match(log, new RegExp(`listener "second" on 127\\.0\\.0\\.1:${second} removed`));
	// Each worker lets go of its socket when it takes the new generation,
	// right after main's log line.
	for (let i = 0; i < 250 && backlogs(second).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
	assert.deepEqual(backlogs(second), []);
	assert.equal(await connects(second), false, 'the removed address refuses connections');
	const again = await get(second, agent);
	assert.equal(again.port, first.port, 'the kept-alive connection is still served');
	assert.equal(again.backend, 'a');
	assert.equal((await requestJson(s.port, { path: '/' })).json.backend, 'b');
});

test('a reload that renames a listener and changes its backlog keeps its sockets', async (t) => {
	const s = await setup(t);
	const before = execFileSync('ss', ['-ltnHe', `sport = :${s.port}`], { encoding: 'utf8' })
		.match(/ino:(\d+)/g).sort();
	const log = await s.reload((text) => toPoolB(text)
		.replace(/listener "web" \{/, 'listener "front" {\n\tbacklog = 100'));
	assert.doesNotMatch(log, /added|removed/);
	const after = execFileSync('ss', ['-ltnHe', `sport = :${s.port}`], { encoding: 'utf8' })
		.match(/ino:(\d+)/g).sort();
	assert.deepEqual(after, before, 'the same sockets (inodes)');
	assert.deepEqual(backlogs(s.port), [100, 100]);
	assert.equal((await requestJson(s.port, { path: '/' })).json.backend, 'b');
});

test('a reload whose new listener cannot be opened is refused, and nothing changes', async (t) => {
	const s = await setup(t);
	// Someone else holds the address (without SO_REUSEPORT).
	const taken = net.createServer();
	await new Promise((r) => taken.listen(0, '127.0.0.1', r));
	t.after(() => taken.close());
	const port = taken.address().port;

	await s.reload((text) => toPoolB(text) + `listener "third" { address = "127.0.0.1:${port}" }\n`,
		new RegExp(`reload failed, the running configuration stays: listener "third": bind\\(127\\.0\\.0\\.1:${port}\\) failed: Address already in use`));
	assert.equal((await requestJson(s.port, { path: '/' })).json.backend, 'a');
	assert.deepEqual(backlogs(s.port).length, 2);
	// The address free again, the same file applies.
	await new Promise((r) => taken.close(r));
	await s.reload((text) => text);
	assert.equal((await requestJson(port, { path: '/' })).json.backend, 'b');
});
