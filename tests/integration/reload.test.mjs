// Reload on SIGHUP: new connections get the new configuration, established
// ones keep the one they started with; a broken file or a change that needs
// a restart leaves the running configuration in place. What a reload does to
// listeners is in listeners.test.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';
import { getBackend as get, requestJson } from './lib/client.mjs';

/** sluice with pools "a" and "b"; the route sends everything to pool. */
async function setup(t, pool) {
	const a = await startBackend({ name: 'a', t });
	const b = await startBackend({ name: 'b', t });
	const pools = { a: { servers: [{ name: 'a', backend: a }] }, b: { servers: [{ name: 'b', backend: b }] } };
	const s = await startSluice({ pools, routes: [{ name: 'all', pool }], t });
	return s;
}

/** Point the route at pool in the running file and reload. */
function switchTo(s, pool, { expect } = {}) {
	return s.reload((text) => text.replace(/pool = "[ab]" \}/, `pool = "${pool}" }`), expect);
}

test('after SIGHUP new connections use the new routes; a kept-alive one keeps the old', async (t) => {
	const s = await setup(t, 'a');
	const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
	t.after(() => agent.destroy());
	const first = await get(s.port, agent);
	assert.equal(first.backend, 'a');

	await switchTo(s, 'b');
	const fresh = await requestJson(s.port, { path: '/' });
	assert.equal(fresh.json.backend, 'b', 'a new connection is routed by the new file');
	const again = await get(s.port, agent);
	assert.equal(again.port, first.port, 'the same client connection was reused');
	assert.equal(again.backend, 'a', 'an established connection keeps its generation');
	assert.equal(s.exitInfo, null);
});

test('a reload with a broken file keeps serving with the running configuration', async (t) => {
	const s = await setup(t, 'a');
	fs.appendFileSync(s.configPath, 'pool "c" { server "x" { address = "nowhere" } }\n');
	s.kill('SIGHUP');
	await s.waitForLog(/reload failed, the running configuration stays: .*sluice\.conf:\d+: /);
	const r = await requestJson(s.port, { path: '/' });
	assert.equal(r.json.backend, 'a');
	// Fixed again, the next reload applies.
	fs.writeFileSync(s.configPath, fs.readFileSync(s.configPath, 'utf8').replace(/pool "c".*\n/, ''));
	await switchTo(s, 'b');
	assert.equal((await requestJson(s.port, { path: '/' })).json.backend, 'b');
});

test('a reload that changes workers or access_log is refused with the reason', async (t) => {
	const s = await setup(t, 'a');
	await s.reload((text) => text.replace(/^workers = \d+/m, 'workers = 3').replace(/pool = "a" \}/, 'pool = "b" }'),
		/reload of .* refused, the running configuration stays: workers changed \(restart sluice to apply that\)/);
	assert.equal((await requestJson(s.port, { path: '/' })).json.backend, 'a');
	await s.reload((text) => text.replace(/^workers = \d+/m, 'workers = 1').replace(/^access_log = .*$/m, 'access_log = "off"'),
		/refused, the running configuration stays: access_log changed/);
	assert.equal((await requestJson(s.port, { path: '/' })).json.backend, 'a');
});

test('many reloads under load lose no request', async (t) => {
	const s = await setup(t, 'a');
	let stop = false;
	let done = 0;
	const errors = [];
	const load = (async () => {
		const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
		try {
			while (!stop) {
				await Promise.all([0, 1, 2, 3].map(() => get(s.port, agent).then(() => { done++; }, (e) => errors.push(e))));
			}
		} finally {
			agent.destroy();
		}
	})();
	for (let i = 0; i < 10; i++) await switchTo(s, i % 2 ? 'a' : 'b');
	stop = true;
	await load;
	assert.deepEqual(errors.map(String), []);
	assert.ok(done > 0);
	assert.equal(s.exitInfo, null);
});
