// WebSocket and Socket.io over TLS: wss:// clients (the ws package,
// socket.io-client) trusting the test CA, through a TLS listener of sluice
// to plain ws and Socket.io servers. Certificates from lib/tls.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { sleep } from './lib/sluice.mjs';
import { openWs, startWsBackend, within } from './lib/ws.mjs';
import { sioSession, sioSessions, startSioServers } from './lib/sio.mjs';
import { plainPool, startTlsSluice, testPki } from './lib/tls.mjs';

const pki = testPki();
const CERTS = [{ name: 'localhost', chain: pki.localhostEc.chain, key: pki.localhostEc.key }];

function wssSluice(t, backends, more = {}) {
	return startTlsSluice({ t, listeners: [{ name: 'https', tls: { certs: CERTS } }], pools: { p: plainPool(backends) }, ...more });
}

test('wss: upgrade through the TLS listener, text and binary both ways, server pushes, close', async (t) => {
	const wb = await startWsBackend({ t });
	const s = await wssSluice(t, [wb]);
	const url = `wss://127.0.0.1:${s.portOf('https')}/chat?room=1`;
	const ws = await openWs(url, { ca: pki.caPem, t });
	ws.send('hello over tls');
	let m = await ws.next();
	assert.equal(m.data.toString(), 'hello over tls');
	assert.equal(m.isBinary, false);
	const bin = crypto.randomBytes(3000);
	ws.send(bin);
	m = await ws.next();
	assert.equal(m.isBinary, true);
	assert.ok(Buffer.compare(m.data, bin) === 0, 'binary echoed intact');
	// The server speaks first, several messages in a row.
	const server = await wb.conn(0);
	for (let i = 0; i < 10; i++) server.send(`push ${i}`);
	for (let i = 0; i < 10; i++) assert.equal((await ws.next()).data.toString(), `push ${i}`);
	// What the backend saw.
	const up = wb.upgrades[0];
	assert.equal(up.url, '/chat?room=1');
	assert.equal(up.headers['x-forwarded-proto'], 'https');
	// Close from the client, code and reason relayed.
	ws.close(4001, 'client done');
	const sc = await within(server.closed, 3000, 'server-side close');
	assert.equal(sc.code, 4001);
	assert.equal(sc.reason, 'client done');
	assert.equal((await within(ws.closed, 3000, 'client close')).code, 4001);
	// And one closed by the server.
	const ws2 = await openWs(url, { ca: pki.caPem, t });
	const server2 = await wb.conn(1);
	server2.close(4002, 'server done');
	const cc = await within(ws2.closed, 3000, 'client sees the close');
	assert.equal(cc.code, 4002);
	assert.equal(cc.reason, 'server done');
	const lines = await s.waitForAccessLog((l) => l.filter((x) => x.status === 101).length >= 2, 5000);
	for (const l of lines.filter((x) => x.status === 101)) assert.equal(l.tls_version, 'TLSv1.3', JSON.stringify(l));
});

test('wss: 8 MiB messages both ways and 2000 small ones arrive intact and in order', async (t) => {
	const wb = await startWsBackend({ t });
	const s = await wssSluice(t, [wb]);
	const ws = await openWs(`wss://127.0.0.1:${s.portOf('https')}/big`, { ca: pki.caPem, t });
	const big = crypto.randomBytes(8 * 1024 * 1024);
	ws.send(big);
	const m = await ws.next(20000);
	assert.equal(m.data.length, big.length);
	assert.equal(crypto.createHash('sha256').update(m.data).digest('hex'), crypto.createHash('sha256').update(big).digest('hex'));
	for (let i = 0; i < 2000; i++) ws.send(`m${i}`);
	for (let i = 0; i < 2000; i++) assert.equal((await ws.next()).data.toString(), `m${i}`);
	ws.close();
});

test('wss: 50 tunnels at once through one worker', async (t) => {
	const wb = await startWsBackend({ t });
	const s = await wssSluice(t, [wb]);
	const url = `wss://127.0.0.1:${s.portOf('https')}/many`;
	const sockets = await Promise.all([...Array(50)].map(() => openWs(url, { ca: pki.caPem, t, timeout: 10000 })));
	await Promise.all(sockets.map(async (ws, i) => {
		for (let k = 0; k < 10; k++) {
			ws.send(`${i}:${k}`);
			assert.equal((await ws.next()).data.toString(), `${i}:${k}`);
		}
	}));
	for (const ws of sockets) ws.close();
});

test('Socket.io over TLS: 2 servers, sticky = socketio, 60 clients poll, upgrade and echo 10 messages each', async (t) => {
	const servers = await startSioServers(['a', 'b'], { t });
	const s = await startTlsSluice({
		t,
		workers: 2,
		listeners: [{ name: 'https', tls: { certs: CERTS } }],
		pools: { chat: plainPool(servers) },
		routes: [{ name: 'io', pool: 'chat', sticky: 'socketio' }],
		stickyKey: 'integration-test-sticky-key-0123456789',
	});
	const url = `https://127.0.0.1:${s.portOf('https')}`;
	const clientOpts = { ca: pki.caPem, rejectUnauthorized: true };
	// One first, for a readable failure if TLS itself does not work.
	const one = await sioSession(url, 0, { messages: 3, clientOpts });
	assert.ok(one.ok, `one client: ${one.problems.join('; ')}`);
	const results = await sioSessions(url, 60, { messages: 10, clientOpts, timeout: 15000 });
	const problems = results.filter((r) => !r.ok).map((r) => `client ${r.i}: ${r.problems.join('; ') || 'not ok'} (upgraded ${r.upgraded}, echoes ${r.echoes})`);
	assert.deepEqual(problems.slice(0, 10), [], `${problems.length} clients failed`);
	assert.equal(results.reduce((n, r) => n + r.echoes, 0), 600);
	assert.ok(results.every((r) => r.transport === 'websocket'), 'every client upgraded');
	for (const srv of servers) {
		assert.deepEqual(srv.events.filter((e) => e.type === 'connection_error'), [], `server ${srv.name}: no Engine.IO errors`);
	}
	const per = Object.fromEntries(servers.map((x) => [x.name, results.filter((r) => r.server === x.name).length]));
	assert.ok(Object.values(per).every((n) => n >= 10), `both servers got sessions: ${JSON.stringify(per)}`);
	await sleep(300);
	for (const l of s.accessLog()) {
		assert.ok(l.status < 400, `access log: ${l.status} for ${l.method} ${l.path}`);
		assert.match(String(l.tls_version), /^TLSv1\.[23]$/, JSON.stringify(l));
	}
});

test('Socket.io over TLS: a client that does not trust the CA fails to connect (the TLS is real)', async (t) => {
	const servers = await startSioServers(['a'], { t });
	const s = await startTlsSluice({
		t,
		listeners: [{ name: 'https', tls: { certs: CERTS } }],
		pools: { chat: plainPool(servers) },
		routes: [{ name: 'io', pool: 'chat', sticky: 'socketio' }],
		stickyKey: 'integration-test-sticky-key-0123456789',
	});
	const r = await sioSession(`https://127.0.0.1:${s.portOf('https')}`, 0, { messages: 1, timeout: 8000, clientOpts: { rejectUnauthorized: true } });
	assert.equal(r.ok, false);
	assert.ok(r.problems.some((p) => /connect_error/.test(p)), r.problems.join('; '));
});
