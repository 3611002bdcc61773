// Listening sockets: the backlog each one is given, and what a reload does
// to them: a listener added starts accepting, one removed stops while its
// established connections go on, a kept one keeps its socket (and what is
// queued on it), and one that cannot be opened refuses the whole reload.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';

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
