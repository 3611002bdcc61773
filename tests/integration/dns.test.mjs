// DNS discovery: a server whose address names a host gets its addresses
// from a DNS server (lib/dns-server.mjs, on loopback) every
// resolve_interval. Addresses that appear get requests; one that goes gets
// no new requests while its open WebSocket goes on; no address (empty
// answer, NXDOMAIN) is a 503; a DNS server that fails or is gone, and a
// reload, leave the servers in place; `sluice -t` asks nothing.
// The backends share one port on 127.0.0.2, .3, .4 and .5, as pods of a
// Service share a target port.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { startSluice, checkConfig, freePort, hasIPv6Loopback, sleep } from './lib/sluice.mjs';
import { requestJson } from './lib/client.mjs';
import { openWs, within } from './lib/ws.mjs';
import { dep } from './lib/deps.mjs';
import { startDnsServer } from './lib/dns-server.mjs';

const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

/**
 * An HTTP backend on host:port answering {backend} as JSON, with a
 * WebSocket echo on any path. Records requests and WebSocket connections.
 */
function startNamedBackend(host, port, name) {
	const { WebSocketServer } = dep('ws');
	const b = { name, host, requests: 0, wsConns: [], sockets: new Set() };
	b.server = http.createServer((req, res) => {
		b.requests++;
		req.resume();
		req.on('end', () => {
			const body = JSON.stringify({ backend: name });
			res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
			res.end(body);
		});
	});
	b.server.on('connection', (s) => {
		b.sockets.add(s);
		s.on('close', () => b.sockets.delete(s));
		s.on('error', () => {});
	});
	const wss = new WebSocketServer({ noServer: true });
	b.server.on('upgrade', (req, sock, head) => wss.handleUpgrade(req, sock, head, (ws) => {
		ws.closed = new Promise((r) => ws.once('close', (code) => r(code)));
		ws.on('error', () => {});
		ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
		b.wsConns.push(ws);
	}));
	b.close = async () => {
		for (const ws of wss.clients) ws.terminate();
		for (const s of b.sockets) s.destroy();
		wss.close();
		await new Promise((r) => b.server.close(() => r()));
	};
	return new Promise((resolve, reject) => {
		b.server.once('error', reject);
		b.server.listen(port, host, () => resolve(b));
	});
}

/** One backend on each of hosts, all on the same port. */
async function startBackends(t, hosts = HOSTS) {
	for (let attempt = 1; ; attempt++) {
		const port = await freePort(hosts[0]);
		const started = [];
		try {
			for (const [i, h] of hosts.entries()) started.push(await startNamedBackend(h, port, `b${i + 2}`));
			t.after(() => Promise.all(started.map((b) => b.close())));
			return { port, backends: started };
		} catch (e) {
			await Promise.all(started.map((b) => b.close()));
			if (attempt >= 5 || e.code !== 'EADDRINUSE') throw e;
		}
	}
}

function configText(dns, port, { interval = '200ms', family, server = 'api.test' } = {}) {
	return `workers = 2
log_level = info
access_log = "@ACCESS_LOG@"
shutdown_timeout = 2s
resolvers = "${dns.address}"
listener "web" { address = "@HOST@:@PORT@" }
pool "p" {
	resolve_interval = ${interval}
${family ? `\tresolve_family = ${family}\n` : ''}	server "api" { address = "${server}:${port}" max_addresses = 4 }
}
route "all" { pool = "p" }
`;
}

/** n requests on fresh connections; returns {backendName: count} (and 'status NNN' for errors). */
async function spread(s, n) {
	const counts = {};
	for (let i = 0; i < n; i++) {
		const r = await requestJson(s.port, { path: `/r${i}`, timeout: 5000 });
		const key = r.status === 200 ? r.json.backend : `status ${r.status}`;
		counts[key] = (counts[key] || 0) + 1;
	}
	return counts;
}

/** Wait until stderr has matched re count times (from the start). */
async function waitForLogCount(s, re, count, timeout = 5000) {
	const g = new RegExp(re.source, 'g');
	const end = Date.now() + timeout;
	for (;;) {
		const n = (s.errorLog().match(g) || []).length;
		if (n >= count) return;
		if (Date.now() > end) throw new Error(`stderr matched ${re} ${n} times, not ${count}, within ${timeout} ms; stderr:\n${s.errorLog()}`);
		await sleep(20);
	}
}

const added = (ip) => new RegExp(`p/api-\\d added: ${ip.replaceAll('.', '\\.')}:`);
const removed = (ip) => new RegExp(`p/api-\\d removed: ${ip.replaceAll('.', '\\.')}:`);

test('requests follow the answers: new addresses get them, gone ones get none but keep their WebSocket', async (t) => {
	const dns = await startDnsServer({ t });
	const { port, backends } = await startBackends(t);
	dns.set('api.test', ['127.0.0.2', '127.0.0.3']);
	const s = await startSluice({ config: configText(dns, port), t });
	await s.waitForLog(added('127.0.0.2'));
	await s.waitForLog(added('127.0.0.3'));
	assert.deepEqual(await spread(s, 20), { b2: 10, b3: 10 });
	assert.ok(dns.asked('api.test', 'AAAA') >= 1, 'resolve_family = any asks AAAA too');

	// A WebSocket on one of them, which that backend then leaves.
	const ws = await openWs(`ws://127.0.0.1:${s.port}/chat`, { t });
	const host = backends.find((b) => b.wsConns.length === 1);
	assert.ok(host, 'the WebSocket reached a backend');
	ws.send('before');
	assert.equal((await ws.next()).data.toString(), 'before');

	dns.set('api.test', ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
	await s.waitForLog(added('127.0.0.4'));
	assert.deepEqual(await spread(s, 30), { b2: 10, b3: 10, b4: 10 });

	const others = ['127.0.0.2', '127.0.0.3', '127.0.0.4'].filter((h) => h !== host.host);
	dns.set('api.test', others);
	await s.waitForLog(removed(host.host));
	const before = host.requests;
	const counts = await spread(s, 20);
	assert.equal(host.requests, before, 'a removed server gets no new request');
	assert.equal(counts[host.name], undefined);
	assert.equal(Object.values(counts).reduce((a, b) => a + b, 0), 20);
	assert.equal(Object.keys(counts).length, 2, `both remaining servers serve: ${JSON.stringify(counts)}`);

	// Its tunnel goes on until the client closes it.
	ws.send('after');
	assert.equal((await ws.next()).data.toString(), 'after');
	ws.close(1000, 'done');
	assert.equal((await within(ws.closed, 5000, 'client close')).code, 1000);
	assert.equal(await within(host.wsConns[0].closed, 5000, 'server side close'), 1000);

	// No address at all: 503, by an empty answer and by NXDOMAIN.
	dns.set('api.test', []);
	await s.waitForLog(/pool p: api\.test resolves to no address now/);
	assert.equal((await requestJson(s.port, { path: '/' })).status, 503);
	dns.set('api.test', ['127.0.0.5']);
	await s.waitForLog(added('127.0.0.5'));
	assert.deepEqual(await spread(s, 3), { b5: 3 });
	dns.remove('api.test');
	await s.waitForLog(removed('127.0.0.5'));
	assert.equal((await requestJson(s.port, { path: '/' })).status, 503);
	assert.equal(s.exitInfo, null);
	const exit = await s.stop();
	assert.equal(exit.code, 0);
});

test('a DNS server that fails or goes away leaves the servers in place', async (t) => {
	const dns = await startDnsServer({ t });
	const { port } = await startBackends(t, HOSTS.slice(0, 2));
	dns.set('api.test', ['127.0.0.2', '127.0.0.3']);
	const s = await startSluice({ config: configText(dns, port, { family: 'ipv4' }), t });
	await s.waitForLog(added('127.0.0.3'));
	assert.equal(dns.asked('api.test', 'AAAA'), 0, 'resolve_family = ipv4 asks no AAAA');

	dns.mode = 'servfail';
	await s.waitForLog(/pool p: resolving api\.test failed \(.*\); its 2 current addresses stay/);
	await dns.waitAsked(3, 'api.test');
	assert.deepEqual(await spread(s, 10), { b2: 5, b3: 5 });
	// Logged once per failure streak.
	assert.equal(s.errorLog().match(/resolving api\.test failed/g).length, 1);

	dns.mode = 'answer';
	await s.waitForLog(/pool p: resolving api\.test works again/);

	// Gone altogether: queries time out, and meanwhile nothing changes.
	await dns.close();
	await sleep(1000);
	assert.deepEqual(await spread(s, 10), { b2: 5, b3: 5 });
	assert.doesNotMatch(s.errorLog(), /removed/);
});

test('a reload keeps the discovered servers until the next answer', async (t) => {
	const dns = await startDnsServer({ t });
	const { port } = await startBackends(t, HOSTS.slice(0, 2));
	dns.set('api.test', ['127.0.0.2', '127.0.0.3']);
	const s = await startSluice({ config: configText(dns, port), t });
	await s.waitForLog(added('127.0.0.3'));
	// From now on the DNS server answers nothing: only the carried-over
	// slots can serve after the reload.
	dns.mode = 'drop';
	fs.writeFileSync(s.configPath, fs.readFileSync(s.configPath, 'utf8').replace('route "all"', 'route "every"'));
	s.kill('SIGHUP');
	await s.waitForLog(/configuration reloaded/);
	assert.deepEqual(await spread(s, 10), { b2: 5, b3: 5 });
	// The slots keep their names: no line says one was added again.
	assert.equal(s.errorLog().match(/added/g).length, 2);
	// And the answers still apply after the reload.
	dns.mode = 'answer';
	dns.set('api.test', ['127.0.0.2']);
	await s.waitForLog(removed('127.0.0.3'));
	assert.deepEqual(await spread(s, 4), { b2: 4 });
});

test('sluice -t checks a host name without asking DNS', async (t) => {
	const dns = await startDnsServer({ t });
	dns.set('api.test', ['127.0.0.2']);
	const text = configText(dns, 3000).replaceAll('@ACCESS_LOG@', 'off').replaceAll('@HOST@', '127.0.0.1')
		.replaceAll('@PORT@', '1');
	const r = checkConfig(text);
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stderr, /configuration OK/);
	await sleep(200);
	assert.equal(dns.questions.length, 0);

	const bad = checkConfig(text.replace('api.test:3000', 'api.test'));
	assert.equal(bad.code, 1);
	assert.match(bad.stderr, /sluice\.conf:9: pool "p": server "api": invalid address "api\.test" \(a host name needs a port, as in "api\.test:3000"\)/);
});

test('resolve_family = ipv6 follows AAAA records', async (t) => {
	if (!(await hasIPv6Loopback())) {
		t.skip('no ::1 on this host');
		return;
	}
	const dns = await startDnsServer({ t });
	const { port } = await startBackends(t, ['::1']);
	dns.set('v6.test', ['127.0.0.9'], ['::1']);
	const s = await startSluice({ config: configText(dns, port, { family: 'ipv6', server: 'v6.test' }), t });
	await s.waitForLog(/p\/api-1 added: \[::1\]:/);
	assert.deepEqual(await spread(s, 3), { b2: 3 });
	assert.equal(dns.asked('v6.test', 'A'), 0);
	await waitForLogCount(s, /added/, 1);
});
