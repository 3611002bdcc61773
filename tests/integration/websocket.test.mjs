// WebSocket tunnels (RFC 6455) through sluice: the upgrade checks, the 101
// relay, frames both ways (text, binary, 16 MiB, fragments, control
// frames, close codes), sluice's frame-header rules (masking,
// ws_max_message), half-close, tunnel_idle, the access log line of a
// tunnel and backpressure against a reader that stops. Peers are the ws
// package (lib/deps.mjs) and raw sockets for frames ws will not send.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { SANITIZERS, poolOf, sleep, startSluice } from './lib/sluice.mjs';
import { patternSha, patternSlice, readHead, sha256 } from './lib/backend.mjs';
import { parseResponses, rawRequest } from './lib/client.mjs';
import {
	Collector, OP, closePayload, encodeFrame, framesOf, openWs, parseFrames, rawUpgrade, requestHead,
	startRawWsServer, startWsBackend, upgradeHeaders, waitFrames, within, wsAccept, wsKey,
} from './lib/ws.mjs';

const MiB = 1024 * 1024;

/** sluice in front of one backend (pool "p"); extra goes to startSluice. */
function sluiceFor(t, backend, extra = {}) {
	return startSluice({ pools: { p: poolOf([backend]) }, t, ...extra });
}

const wsUrl = (s, path = '/ws') => `ws://127.0.0.1:${s.port}${path}`;

/** The access log lines of upgraded exchanges, once n of them are there. */
async function tunnelLines(s, n = 1, timeout = 5000) {
	const lines = await s.waitForAccessLog((l) => l.filter((x) => x.status === 101).length >= n, timeout);
	return lines.filter((x) => x.status === 101);
}

function tokens(v) {
	return String(v || '').split(',').map((x) => x.trim().toLowerCase()).filter(Boolean);
}

/* ---------- handshake and echo ---------- */

test('upgrade: forwarded with its headers, 101 relayed, text and binary both ways', async (t) => {
	const b = await startWsBackend({
		t,
		onConnection(ws) {
			ws.send('hello from server');
			ws.send(Buffer.from([0, 1, 2, 255]));
			ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary }));
		},
	});
	const s = await sluiceFor(t, b);
	const ws = await openWs(wsUrl(s, '/chat?room=1'), { t, protocols: ['chat.v1', 'chat.v0'], headers: { 'X-Custom': 'kept' } });
	const first = await ws.next();
	assert.equal(first.isBinary, false);
	assert.equal(first.data.toString(), 'hello from server');
	const second = await ws.next();
	assert.equal(second.isBinary, true);
	assert.deepEqual([...second.data], [0, 1, 2, 255]);
	const text = 'héllo ✓ über';
	ws.send(text);
	const e1 = await ws.next();
	assert.equal(e1.isBinary, false);
	assert.equal(e1.data.toString('utf8'), text);
	const bin = crypto.randomBytes(1000);
	ws.send(bin);
	const e2 = await ws.next();
	assert.equal(e2.isBinary, true);
	assert.ok(e2.data.equals(bin));
	assert.equal(ws.protocol, 'chat.v1', 'Sec-WebSocket-Protocol of the 101 reached the client');

	assert.equal(b.upgrades.length, 1);
	assert.equal(b.requests.length, 0);
	const h = b.upgrades[0].headers;
	assert.equal(b.upgrades[0].url, '/chat?room=1');
	assert.equal(b.upgrades[0].method, 'GET');
	assert.equal(b.upgrades[0].httpVersion, '1.1');
	assert.equal(h.upgrade.toLowerCase(), 'websocket');
	assert.deepEqual(tokens(h.connection), ['upgrade']);
	assert.equal(h['sec-websocket-version'], '13');
	assert.match(h['sec-websocket-key'], /^[A-Za-z0-9+/]{22}==$/);
	assert.equal(h['sec-websocket-protocol'], 'chat.v1,chat.v0');
	assert.equal(h['x-custom'], 'kept');
	assert.match(h['x-forwarded-for'] || '', /127\.0\.0\.1/);
	assert.match(h['x-request-id'] || '', /^[0-9a-f]{32}$/);
	ws.close(1000);
	await within(ws.closed, 3000, 'close');
});

test('upgrade tokens are case-insensitive; hop-by-hop fields removed, Sec-WebSocket-* passed both ways', async (t) => {
	const b = await startWsBackend({ t, wsOptions: { handleProtocols: () => 'chat.v1' } });
	const s = await sluiceFor(t, b);
	const key = wsKey();
	const head = requestHead('GET /raw HTTP/1.1', [
		['Host', 'ws.test'],
		['Upgrade', 'WebSocket'],
		['Connection', 'keep-alive, Upgrade, X-Hop'],
		['X-Hop', 'secret'],
		['Keep-Alive', 'timeout=5'],
		['Sec-WebSocket-Key', key],
		['sec-websocket-version', '13'],
		['Sec-WebSocket-Protocol', 'chat.v1'],
		['Sec-WebSocket-Extensions', 'x-test-ext'],
		['X-Other', 'kept'],
	]);
	const { conn, response, headLength } = await rawUpgrade(s.port, { head });
	t.after(() => conn.destroy());
	assert.equal(response.status, 101, response.head);
	assert.equal(response.headers.upgrade.toLowerCase(), 'websocket');
	assert.ok(tokens(response.headers.connection).includes('upgrade'), response.head);
	assert.equal(response.headers['sec-websocket-accept'], wsAccept(key));
	assert.equal(response.headers['sec-websocket-protocol'], 'chat.v1');
	const h = b.upgrades[0].headers;
	assert.equal(h.upgrade.toLowerCase(), 'websocket');
	assert.deepEqual(tokens(h.connection), ['upgrade']);
	assert.equal(h['x-hop'], undefined);
	assert.equal(h['keep-alive'], undefined);
	assert.equal(h['sec-websocket-key'], key);
	assert.equal(h['sec-websocket-protocol'], 'chat.v1');
	assert.equal(h['sec-websocket-extensions'], 'x-test-ext');
	assert.equal(h['x-other'], 'kept');
	// The tunnel works after this handshake too.
	await conn.write(encodeFrame({ opcode: OP.TEXT, payload: 'raw hello', mask: true }));
	const frames = await waitFrames(conn, headLength, (f) => f.length >= 1);
	assert.equal(frames[0].opcode, OP.TEXT);
	assert.equal(frames[0].masked, false);
	assert.equal(frames[0].payload.toString(), 'raw hello');
});

test('16 MiB messages both ways arrive intact', async (t) => {
	const N = 16 * MiB;
	const up = crypto.randomBytes(N);
	const down = crypto.randomBytes(N);
	const got = [];
	const b = await startWsBackend({
		t,
		onConnection(ws) {
			ws.on('message', (d, isBinary) => {
				got.push({ sha: sha256(d), length: d.length, isBinary });
				ws.send(down);
			});
		},
	});
	const s = await sluiceFor(t, b);
	const ws = await openWs(wsUrl(s), { t });
	ws.send(up);
	const m = await ws.next(30000);
	assert.equal(m.isBinary, true);
	assert.equal(m.data.length, N);
	assert.equal(sha256(m.data), sha256(down), 'server -> client 16 MiB intact');
	assert.deepEqual(got, [{ sha: sha256(up), length: N, isBinary: true }], 'client -> server 16 MiB intact');
	// And a 16 MiB text message.
	const textUp = 'x'.repeat(N - 3) + 'end';
	const textB = await startWsBackend({ t });
	const s2 = await sluiceFor(t, textB);
	const ws2 = await openWs(wsUrl(s2), { t });
	ws2.send(textUp);
	const m2 = await ws2.next(30000);
	assert.equal(m2.isBinary, false);
	assert.equal(m2.data.length, N);
	assert.equal(sha256(m2.data), sha256(Buffer.from(textUp)));
	ws.close();
	ws2.close();
});

test('fragmented messages arrive reassembled; control frames between fragments pass', async (t) => {
	const part = (n, c) => Buffer.alloc(n, c);
	const b = await startWsBackend({
		t,
		onConnection(ws) {
			ws.on('message', (d, isBinary) => {
				ws.received.push({ data: Buffer.from(d), isBinary });
				if (ws.received.length === 2) {
					// Server -> client: a fragmented text message with a
					// ping between the fragments.
					ws.send('down-1|', { fin: false });
					ws.ping('between');
					ws.send('down-2|', { fin: false });
					ws.send('down-3', { fin: true });
					ws.send(part(70000, 0x41), { binary: true, fin: false });
					ws.send(part(70000, 0x42), { binary: true, fin: true });
				}
			});
		},
	});
	const s = await sluiceFor(t, b);
	const ws = await openWs(wsUrl(s), { t });
	ws.send('up-1|', { fin: false });
	ws.ping('mid-message');
	ws.send('up-2|', { fin: false });
	ws.send('', { fin: false });
	ws.send('up-3', { fin: true });
	ws.send(part(100000, 1), { binary: true, fin: false });
	ws.send(part(100000, 2), { binary: true, fin: false });
	ws.send(part(100000, 3), { binary: true, fin: true });
	const d1 = await ws.next();
	assert.equal(d1.isBinary, false);
	assert.equal(d1.data.toString(), 'down-1|down-2|down-3');
	const d2 = await ws.next();
	assert.equal(d2.isBinary, true);
	assert.ok(d2.data.equals(Buffer.concat([part(70000, 0x41), part(70000, 0x42)])));
	const srv = await b.conn(0);
	assert.equal(srv.received.length, 2);
	assert.equal(srv.received[0].isBinary, false);
	assert.equal(srv.received[0].data.toString(), 'up-1|up-2|up-3');
	assert.equal(srv.received[1].isBinary, true);
	assert.ok(srv.received[1].data.equals(Buffer.concat([part(100000, 1), part(100000, 2), part(100000, 3)])));
	assert.deepEqual(srv.pings.map(String), ['mid-message'], 'the ping sent between fragments reached the server');
	assert.ok(ws.pings.map(String).includes('between'), 'the ping sent between fragments reached the client');
	assert.deepEqual(ws.pongs.map(String), ['mid-message'], 'the server\'s pong came back');
	ws.close();
});

test('frames are relayed byte for byte both ways (raw peers)', async (t) => {
	const upFrames = [
		encodeFrame({ opcode: OP.TEXT, fin: false, payload: 'Hel', mask: true }),
		encodeFrame({ opcode: OP.PING, payload: 'p1', mask: true }),
		encodeFrame({ opcode: OP.CONT, fin: false, payload: '', mask: true }),
		encodeFrame({ opcode: OP.CONT, fin: true, payload: 'lo', mask: true }),
		encodeFrame({ opcode: OP.BINARY, payload: crypto.randomBytes(200), mask: true }),
		encodeFrame({ opcode: OP.BINARY, payload: crypto.randomBytes(70000), mask: true }),
		encodeFrame({ opcode: OP.PONG, payload: 'q', mask: true }),
		encodeFrame({ opcode: OP.TEXT, payload: '', mask: Buffer.from([0, 0, 0, 0]) }),
	];
	const downFrames = [
		encodeFrame({ opcode: OP.TEXT, payload: 'welcome' }),
		encodeFrame({ opcode: OP.BINARY, fin: false, payload: crypto.randomBytes(300) }),
		encodeFrame({ opcode: OP.PING, payload: 'srv' }),
		encodeFrame({ opcode: OP.CONT, fin: true, payload: crypto.randomBytes(65536) }),
		encodeFrame({ opcode: OP.PONG, payload: '' }),
	];
	const up = Buffer.concat(upFrames);
	const down = Buffer.concat(downFrames);
	let serverSide;
	const r = await startRawWsServer((sock) => {
		serverSide = new Collector(sock);
		// Send in odd-sized pieces: sluice must not depend on frame
		// boundaries matching reads.
		for (let off = 0; off < down.length; off += 777) sock.write(down.subarray(off, off + 777));
	}, { t });
	const s = await sluiceFor(t, r);
	const { conn, headLength, response } = await rawUpgrade(s.port);
	t.after(() => conn.destroy());
	assert.equal(response.status, 101);
	for (let off = 0; off < up.length; off += 1000) await conn.write(up.subarray(off, off + 1000));
	await conn.waitFor((buf) => buf.length - headLength >= down.length, 5000);
	assert.ok(conn.buf.subarray(headLength).equals(down), 'server -> client bytes unchanged');
	await serverSide.until((c) => c.length >= up.length, 5000, 'client frames at the server');
	assert.ok(serverSide.buf.equals(up), 'client -> server bytes unchanged');
});

test('ping and pong pass both ways', async (t) => {
	const b = await startWsBackend({ t });
	const s = await sluiceFor(t, b);
	const ws = await openWs(wsUrl(s), { t });
	ws.ping('client-ping');
	assert.equal(String(await ws.waitPong()), 'client-ping');
	const srv = await b.conn(0);
	assert.deepEqual(srv.pings.map(String), ['client-ping']);
	srv.ping('server-ping');
	const end = Date.now() + 5000;
	while (!srv.pongs.length && Date.now() < end) await sleep(10);
	assert.deepEqual(srv.pongs.map(String), ['server-ping'], 'the client\'s pong reached the server');
	assert.deepEqual(ws.pings.map(String), ['server-ping']);
	ws.close();
});

test('close codes and reasons pass both ways', async (t) => {
	const b = await startWsBackend({ t });
	const s = await sluiceFor(t, b);
	// Client closes.
	const ws1 = await openWs(wsUrl(s), { t });
	const srv1 = await b.conn(0);
	ws1.close(4001, 'bye');
	assert.deepEqual(await within(srv1.closed, 3000, 'server close'), { code: 4001, reason: 'bye' });
	assert.deepEqual(await within(ws1.closed, 3000, 'client close'), { code: 4001, reason: 'bye' });
	// Server closes.
	const ws2 = await openWs(wsUrl(s), { t });
	const srv2 = await b.conn(1);
	srv2.close(4002, 'server says bye');
	assert.deepEqual(await within(ws2.closed, 3000, 'client close'), { code: 4002, reason: 'server says bye' });
	assert.deepEqual(await within(srv2.closed, 3000, 'server close'), { code: 4002, reason: 'server says bye' });
	const lines = await tunnelLines(s, 2);
	for (const l of lines) {
		assert.equal(l.termination, 'ok', JSON.stringify(l));
		assert.equal(l.phase, 'tunnel', JSON.stringify(l));
	}
});

test('permessage-deflate negotiated end to end: compressed frames (RSV1) pass', async (t) => {
	const b = await startWsBackend({ t, wsOptions: { perMessageDeflate: { threshold: 0 } } });
	const s = await sluiceFor(t, b);
	const ws = await openWs(wsUrl(s), { t, perMessageDeflate: { threshold: 0 } });
	assert.match(ws.extensions, /permessage-deflate/);
	const text = 'compress me '.repeat(10000);
	ws.send(text);
	const m = await ws.next();
	assert.equal(m.data.toString(), text);
	ws.close();
});

/* ---------- upgrade requests sluice refuses, answers it relays ---------- */

test('bad upgrade requests get 400 and close, and nothing is forwarded', async (t) => {
	const b = await startWsBackend({ t });
	const s = await sluiceFor(t, b);
	const key = wsKey();
	const without = (name) => upgradeHeaders(key).filter(([n]) => n !== name);
	const replace = (name, value) => upgradeHeaders(key).map(([n, v]) => [n, n === name ? value : v]);
	const cases = {
		'missing Sec-WebSocket-Key': requestHead('GET /ws HTTP/1.1', without('Sec-WebSocket-Key')),
		'key of 15 bytes': requestHead('GET /ws HTTP/1.1', replace('Sec-WebSocket-Key', crypto.randomBytes(15).toString('base64'))),
		'key of 17 bytes (24 chars)': requestHead('GET /ws HTTP/1.1', replace('Sec-WebSocket-Key', crypto.randomBytes(17).toString('base64'))),
		'key of 18 bytes (24 chars, no padding)': requestHead('GET /ws HTTP/1.1', replace('Sec-WebSocket-Key', crypto.randomBytes(18).toString('base64'))),
		'key not base64': requestHead('GET /ws HTTP/1.1', replace('Sec-WebSocket-Key', '!!!!!!!!!!!!!!!!!!!!!A==')),
		'Sec-WebSocket-Version 12': requestHead('GET /ws HTTP/1.1', replace('Sec-WebSocket-Version', '12')),
		'no Sec-WebSocket-Version': requestHead('GET /ws HTTP/1.1', without('Sec-WebSocket-Version')),
		'POST': requestHead('POST /ws HTTP/1.1', [...upgradeHeaders(key), ['Content-Length', '0']]),
		'HTTP/1.0': requestHead('GET /ws HTTP/1.0', upgradeHeaders(key)),
		'Connection without upgrade': requestHead('GET /ws HTTP/1.1', replace('Connection', 'keep-alive')),
		'no Connection field': requestHead('GET /ws HTTP/1.1', without('Connection')),
	};
	for (const [name, head] of Object.entries(cases)) {
		const r = await rawRequest(s.port, head, { timeout: 3000 });
		const res = r.responses[0];
		assert.ok(res, `${name}: no response; got ${JSON.stringify(r.text)}`);
		assert.equal(res.status, 400, `${name}: ${res.head}`);
		assert.ok(tokens(res.headers.connection).includes('close'), `${name}: Connection: close expected: ${res.head}`);
		assert.ok(r.closed, `${name}: sluice closes the connection`);
		assert.equal(b.upgrades.length + b.requests.length, 0, `${name}: nothing reaches the server`);
	}
	// sluice still upgrades a good request afterwards.
	const ws = await openWs(wsUrl(s), { t });
	ws.send('still fine');
	assert.equal((await ws.next()).data.toString(), 'still fine');
	ws.close();
	const lines = s.accessLog().filter((l) => l.status === 400);
	assert.equal(lines.length, Object.keys(cases).length);
	for (const l of lines) assert.equal(l.termination, 'bad_request', JSON.stringify(l));
});

test('an Upgrade other than websocket is forwarded as plain HTTP without Upgrade/Connection', async (t) => {
	const b = await startWsBackend({ t });
	const s = await sluiceFor(t, b);
	const r = await rawRequest(s.port, requestHead('GET /plain HTTP/1.1', [
		['Host', 'ws.test'], ['Upgrade', 'h2c'], ['Connection', 'Upgrade, HTTP2-Settings'], ['HTTP2-Settings', 'AAMAAABkAAQAAP__'],
	]), { expectResponses: 1, timeout: 3000 });
	assert.equal(r.responses[0].status, 200, r.text);
	assert.equal(r.responses[0].body.toString(), 'plain\n');
	assert.equal(b.upgrades.length, 0);
	assert.equal(b.requests.length, 1);
	const h = b.requests[0].headers;
	assert.equal(h.upgrade, undefined);
	assert.equal(h['http2-settings'], undefined);
	assert.ok(!tokens(h.connection).includes('upgrade'), `Connection: ${h.connection}`);
});

test('a non-101 answer to an upgrade is relayed as ordinary HTTP', async (t) => {
	// ws refuses the handshake (verifyClient) with 403.
	const b = await startWsBackend({ t, wsOptions: { verifyClient: (info, cb) => cb(false, 403, 'Forbidden') } });
	const s = await sluiceFor(t, b);
	await assert.rejects(openWs(wsUrl(s), { t }), (e) => e.statusCode === 403);
	assert.equal(b.upgrades.length, 1);
	const l = (await s.waitForAccessLog((x) => x.length >= 1))[0];
	assert.equal(l.status, 403);
	assert.equal(l.termination, 'ok');
	assert.equal(l.phase, 'done');

	// A plain server answers 403 with keep-alive: the client connection
	// goes on with the next request.
	const answers = [];
	const raw = await startRawWsServer(async (sock, head) => {
		let h = head;
		for (;;) {
			answers.push(h.startLine);
			if (h.headers.upgrade) sock.write('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nforbidden\n');
			else sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nafter\n');
			try {
				sock.resume(); // readHead left it paused
				h = await readHead(sock, { timeout: 10000 });
			} catch {
				return;
			}
		}
	}, { t, respond: () => '' });
	const s2 = await sluiceFor(t, raw);
	const { conn, response } = await rawUpgrade(s2.port);
	t.after(() => conn.destroy());
	assert.equal(response.status, 403);
	await conn.waitResponses(1);
	assert.equal(parseResponses(conn.buf)[0].body.toString(), 'forbidden\n');
	assert.ok(!conn.closed, 'the client connection stays open after a keep-alive 403');
	await conn.write('GET /after HTTP/1.1\r\nHost: ws.test\r\n\r\n');
	const rs = await conn.waitResponses(2);
	assert.equal(rs[1].status, 200);
	assert.equal(rs[1].body.toString(), 'after\n');
	assert.deepEqual(answers, ['GET /ws HTTP/1.1', 'GET /after HTTP/1.1']);
});

/* ---------- frame-header rules ---------- */

test('an unmasked client frame: close 1002 to the client and to the server, both closed', async (t) => {
	const b = await startWsBackend({ t });
	const s = await sluiceFor(t, b);
	const { conn, headLength, response } = await rawUpgrade(s.port);
	t.after(() => conn.destroy());
	assert.equal(response.status, 101);
	const srv = await b.conn(0);
	await conn.write(encodeFrame({ opcode: OP.TEXT, payload: 'not masked', mask: false }));
	const frames = await waitFrames(conn, headLength, (f) => f.some((x) => x.opcode === OP.CLOSE), 3000);
	const close = frames.find((x) => x.opcode === OP.CLOSE);
	assert.equal(close.code, 1002, `close code ${close.code}`);
	assert.equal(close.masked, false);
	assert.deepEqual(frames.filter((x) => x.opcode !== OP.CLOSE).map((x) => x.payload.toString()), [], 'nothing echoed');
	assert.ok(await conn.waitClose(3000), 'sluice closes the client connection');
	const info = await within(srv.closed, 3000, 'server side closed');
	assert.equal(info.code, 1002, 'the server got a close frame 1002');
	assert.equal(srv.received.length, 0, 'the unmasked frame never reached the server');
	const [l] = await tunnelLines(s);
	assert.equal(l.termination, 'ws_protocol');
	assert.equal(l.phase, 'tunnel');
});

test('a masked server frame: close 1002 to the client and to the server', async (t) => {
	let serverSide;
	const r = await startRawWsServer((sock) => {
		serverSide = new Collector(sock);
		sock.write(encodeFrame({ opcode: OP.TEXT, payload: 'masked by mistake', mask: true }));
	}, { t });
	const s = await sluiceFor(t, r);
	const { conn, headLength, response } = await rawUpgrade(s.port);
	t.after(() => conn.destroy());
	assert.equal(response.status, 101);
	const frames = await waitFrames(conn, headLength, (f) => f.some((x) => x.opcode === OP.CLOSE), 3000);
	assert.deepEqual(frames.map((x) => x.opcode), [OP.CLOSE], 'only a close frame, not the masked one');
	assert.equal(frames[0].code, 1002);
	assert.equal(frames[0].masked, false);
	assert.ok(await conn.waitClose(3000), 'client connection closed');
	await serverSide.until((c) => c.closed || c.ended, 3000, 'server side closed');
	const sf = serverSide.frames();
	assert.equal(sf.length, 1, 'the server got one frame');
	assert.equal(sf[0].opcode, OP.CLOSE);
	assert.equal(sf[0].code, 1002);
	assert.equal(sf[0].masked, true, 'sluice masks what it sends to a server');
	const [l] = await tunnelLines(s);
	assert.equal(l.termination, 'ws_protocol');
});

test('ws_max_message: a message over it (either way) gets close 1009, one of exactly its size passes', async (t) => {
	const b = await startWsBackend({ t });
	const s = await sluiceFor(t, b, { limits: { ws_max_message: '1m' } });

	// Exactly 1 MiB, in one frame and in fragments: fine.
	const ok = await openWs(wsUrl(s), { t });
	const exact = crypto.randomBytes(MiB);
	ok.send(exact);
	assert.equal(sha256((await ok.next()).data), sha256(exact));
	ok.send(exact.subarray(0, 300000), { fin: false });
	ok.send(exact.subarray(300000), { fin: true });
	assert.equal(sha256((await ok.next()).data), sha256(exact));
	ok.close();
	await within(ok.closed, 3000, 'close');

	// One frame of 1 MiB + 1.
	const big = await openWs(wsUrl(s), { t });
	const srvBig = await b.conn(1);
	big.send(crypto.randomBytes(MiB + 1));
	const c1 = await within(big.closed, 5000, 'client closed');
	assert.equal(c1.code, 1009, `client close code ${c1.code} (errors: ${big.errors.map((e) => e.code || e.message)})`);
	const s1 = await within(srvBig.closed, 5000, 'server closed');
	assert.equal(s1.code, 1009, 'the server got close 1009');
	assert.equal(srvBig.received.length, 0);

	// Three fragments of 400 KiB: each under the limit, the message over.
	const frag = await openWs(wsUrl(s), { t });
	const srvFrag = await b.conn(2);
	const f = crypto.randomBytes(400 * 1024);
	frag.send(f, { fin: false });
	frag.send(f, { fin: false });
	frag.send(f, { fin: true });
	const c2 = await within(frag.closed, 5000, 'client closed');
	assert.equal(c2.code, 1009, `client close code ${c2.code}`);
	assert.equal((await within(srvFrag.closed, 5000, 'server closed')).code, 1009);
	assert.equal(srvFrag.received.length, 0);

	// The limit holds for messages from the server too.
	const down = await openWs(wsUrl(s), { t });
	const srvDown = await b.conn(3);
	srvDown.send(crypto.randomBytes(MiB + 1));
	const c3 = await within(down.closed, 5000, 'client closed');
	assert.equal(c3.code, 1009, `client close code ${c3.code}`);
	assert.equal(down.inbox.length, 0, 'the oversized message was not delivered');
	assert.equal((await within(srvDown.closed, 5000, 'server closed')).code, 1009);

	const lines = await tunnelLines(s, 4);
	assert.deepEqual(lines.map((l) => l.termination).sort(), ['ok', 'ws_too_big', 'ws_too_big', 'ws_too_big']);
});

/* ---------- how tunnels end ---------- */

test('half-close: the client ends first, the server still answers', async (t) => {
	let serverSide;
	let serverSock;
	const r = await startRawWsServer((sock) => {
		serverSock = sock;
		serverSide = new Collector(sock);
	}, { t });
	const s = await sluiceFor(t, r);
	const { conn, headLength } = await rawUpgrade(s.port, { halfOpen: true });
	t.after(() => conn.destroy());
	const last = encodeFrame({ opcode: OP.TEXT, payload: 'last words', mask: true });
	await conn.write(last);
	conn.end();
	await serverSide.until((c) => c.ended, 3000, 'FIN passed to the server');
	assert.ok(serverSide.buf.equals(last), 'pending bytes flushed before the FIN');
	assert.ok(!serverSide.closed);
	const reply = encodeFrame({ opcode: OP.TEXT, payload: 'late reply' });
	serverSock.end(reply);
	await conn.waitFor(() => conn.ended, 3000);
	assert.ok(conn.buf.subarray(headLength).equals(reply), 'the server\'s data after the client FIN arrived');
	const [l] = await tunnelLines(s);
	assert.equal(l.termination, 'ok');
	assert.equal(l.phase, 'tunnel');
	assert.equal(l.ws_messages_in, 1);
	assert.equal(l.ws_messages_out, 1);
});

test('half-close: the server ends first, the client still sends', async (t) => {
	let serverSide;
	const r = await startRawWsServer((sock) => {
		serverSide = new Collector(sock);
		sock.end(encodeFrame({ opcode: OP.BINARY, payload: Buffer.alloc(100000, 7) }));
	}, { t });
	const s = await sluiceFor(t, r);
	const { conn, headLength } = await rawUpgrade(s.port, { halfOpen: true });
	t.after(() => conn.destroy());
	await conn.waitFor(() => conn.ended, 3000);
	const fr = framesOf(conn, headLength);
	assert.equal(fr.length, 1);
	assert.equal(fr[0].payload.length, 100000, 'the whole frame before the FIN');
	const late = encodeFrame({ opcode: OP.TEXT, payload: 'client after server FIN', mask: true });
	await conn.write(late);
	await serverSide.until((c) => c.length >= late.length, 3000, 'client data after the server FIN');
	assert.ok(serverSide.buf.equals(late));
	conn.end();
	await serverSide.until((c) => c.ended, 3000, 'client FIN passed to the server');
	const [l] = await tunnelLines(s);
	assert.equal(l.termination, 'ok');
});

test('abrupt resets end the tunnel: upstream_closed and client_closed', async (t) => {
	const r = await startRawWsServer((sock, head) => {
		if (head.url === '/reset-by-server') setTimeout(() => sock.resetAndDestroy(), 100);
		else sock.resume();
	}, { t });
	const s = await sluiceFor(t, r);
	const a = await rawUpgrade(s.port, { path: '/reset-by-server' });
	t.after(() => a.conn.destroy());
	assert.equal(a.response.status, 101);
	assert.ok(await a.conn.waitClose(3000), 'client connection closed after the server reset');
	const b = await rawUpgrade(s.port, { path: '/reset-by-client' });
	assert.equal(b.response.status, 101);
	await sleep(50);
	b.conn.sock.resetAndDestroy();
	const lines = await tunnelLines(s, 2);
	const by = Object.fromEntries(lines.map((l) => [l.path, l]));
	assert.equal(by['/reset-by-server'].termination, 'upstream_closed');
	assert.equal(by['/reset-by-client'].termination, 'client_closed');
	for (const l of lines) assert.equal(l.phase, 'tunnel');
});

test('tunnel_idle closes an idle tunnel; traffic keeps a tunnel open', async (t) => {
	const b = await startWsBackend({ t });
	const s = await sluiceFor(t, b, { timeouts: { tunnel_idle: '1s' } });
	const idle = await openWs(wsUrl(s, '/idle'), { t });
	const busy = await openWs(wsUrl(s, '/busy'), { t });
	const t0 = Date.now();
	for (let i = 0; i < 8; i++) {
		await sleep(300);
		busy.send(`tick ${i}`);
		assert.equal((await busy.next(2000)).data.toString(), `tick ${i}`);
	}
	// 2.4 s of 300 ms ticks: the busy one lives, the idle one is gone.
	assert.equal(busy.closeInfo, null, 'a tunnel with traffic stays open');
	await within(idle.closed, 2000, 'idle tunnel closed');
	const idleFor = Date.now() - t0;
	assert.ok(idleFor >= 900, `closed after ${idleFor} ms`);
	const srvIdle = await b.conn(0);
	await within(srvIdle.closed, 3000, 'server side of the idle tunnel closed');
	const [l] = await tunnelLines(s);
	assert.equal(l.path, '/idle');
	assert.equal(l.termination, 'tunnel_idle');
	assert.equal(l.phase, 'tunnel');
	assert.equal(l.status, 101);
	// And the busy one goes idle too once the ticks stop.
	await within(busy.closed, 3000, 'busy tunnel closed after going idle');
});

/* ---------- access log ---------- */

test('access log of a tunnel: status 101, phase tunnel, exact message and byte counts', async (t) => {
	let serverSide;
	const down = [
		encodeFrame({ opcode: OP.TEXT, payload: 'one' }),
		encodeFrame({ opcode: OP.BINARY, fin: false, payload: Buffer.alloc(1000, 1) }),
		encodeFrame({ opcode: OP.PING, payload: 'x' }),
		encodeFrame({ opcode: OP.CONT, fin: true, payload: Buffer.alloc(1000, 2) }),
		encodeFrame({ opcode: OP.TEXT, payload: 'three' }),
		encodeFrame({ opcode: OP.BINARY, payload: Buffer.alloc(70000, 3) }),
	]; // 4 messages out
	const r = await startRawWsServer((sock) => {
		serverSide = new Collector(sock);
		sock.write(Buffer.concat(down));
	}, { t, name: 'echo' });
	const s = await sluiceFor(t, r);
	const { conn, request, headLength } = await rawUpgrade(s.port, { path: '/log?me=1' });
	t.after(() => conn.destroy());
	const up = [
		encodeFrame({ opcode: OP.TEXT, payload: 'a', mask: true }),
		encodeFrame({ opcode: OP.TEXT, fin: false, payload: 'b1', mask: true }),
		encodeFrame({ opcode: OP.PING, payload: 'p', mask: true }),
		encodeFrame({ opcode: OP.CONT, fin: false, payload: 'b2', mask: true }),
		encodeFrame({ opcode: OP.CONT, fin: true, payload: 'b3', mask: true }),
		encodeFrame({ opcode: OP.PONG, payload: 'x', mask: true }),
		encodeFrame({ opcode: OP.BINARY, payload: Buffer.alloc(300, 9), mask: true }),
		encodeFrame({ opcode: OP.CLOSE, payload: closePayload(1000, 'done'), mask: true }),
	]; // 3 messages in
	for (const f of up) await conn.write(f);
	const upLen = up.reduce((n, f) => n + f.length, 0);
	await serverSide.until((c) => c.length >= upLen, 3000, 'all client frames at the server');
	await conn.waitFor((buf) => parseFrames(buf.subarray(headLength)).frames.length >= down.length, 3000);
	// The server answers the close and closes.
	const serverClose = encodeFrame({ opcode: OP.CLOSE, payload: closePayload(1000, 'done') });
	serverSide.sock.end(serverClose);
	assert.ok(await conn.waitClose(3000), 'sluice closes the client connection after both closes');
	const [l] = await tunnelLines(s);
	assert.equal(l.status, 101);
	assert.equal(l.phase, 'tunnel');
	assert.equal(l.termination, 'ok');
	assert.equal(l.method, 'GET');
	assert.equal(l.path, '/log?me=1');
	assert.equal(l.server, 'p/echo');
	assert.equal(l.ws_messages_in, 3, 'data messages client -> server (control frames not counted)');
	assert.equal(l.ws_messages_out, 4, 'data messages server -> client');
	assert.equal(l.bytes_in, request.length + upLen, 'bytes_in: request head and every frame from the client');
	assert.equal(l.bytes_out, conn.buf.length, 'bytes_out: the 101 head and every frame to the client');
	assert.equal(conn.buf.length - headLength, down.reduce((n, f) => n + f.length, 0) + serverClose.length);
	assert.ok(typeof l.total_ms === 'number' && l.total_ms > 0);
	assert.match(l.request_id, /^[0-9a-f]{32}$/);
});

/* ---------- backpressure ---------- */

test('a client that stops reading: the server is paused, sluice RSS stays bounded, nothing is lost', async (t) => {
	const MSG = 64 * 1024;
	const COUNT = 3200; // 200 MiB
	const TOTAL = MSG * COUNT;
	let sent = 0;
	const b = await startWsBackend({
		t,
		onConnection(ws) {
			ws.on('message', () => {
				const sock = ws._socket;
				const pump = () => {
					while (sent < COUNT && ws.readyState === 1) {
						ws.send(patternSlice(sent * MSG, MSG), { binary: true });
						sent++;
						if (sock.writableLength > MiB) {
							sock.once('drain', pump);
							return;
						}
					}
				};
				pump();
			});
		},
	});
	const s = await sluiceFor(t, b, { workers: 2 });
	const ws = await openWs(wsUrl(s), { t, keepInbox: false });
	let received = 0;
	let badLength = 0;
	const h = crypto.createHash('sha256');
	ws.on('message', (d, isBinary) => {
		if (d.length !== MSG || !isBinary) badLength++;
		h.update(d);
		received++;
	});
	await sleep(200);
	const rss0 = s.procStatusBytes('VmRSS');
	ws.pause();
	ws.send('go');
	let peak = rss0;
	const t0 = Date.now();
	while (Date.now() - t0 < 3000) {
		await sleep(100);
		peak = Math.max(peak, s.procStatusBytes('VmRSS') || 0);
	}
	const sentWhilePaused = sent;
	t.diagnostic(`while the client did not read: the server sent ${(sentWhilePaused * MSG / MiB).toFixed(1)} MiB, ` +
		`sluice VmRSS ${(rss0 / MiB).toFixed(1)} -> peak ${(peak / MiB).toFixed(1)} MiB`);
	assert.ok(sentWhilePaused > 0, 'the server started sending');
	assert.ok(sentWhilePaused * MSG < 64 * MiB,
		`the server was paused by backpressure (it sent ${(sentWhilePaused * MSG / MiB).toFixed(1)} MiB while the client did not read)`);
	if (!SANITIZERS) {
		assert.ok(peak - rss0 < 16 * MiB, `sluice RSS grew by ${((peak - rss0) / MiB).toFixed(1)} MiB (from ${(rss0 / MiB).toFixed(1)} MiB)`);
	}
	ws.resume();
	const end = Date.now() + 60000;
	while (received < COUNT && Date.now() < end && !ws.closeInfo) await sleep(50);
	assert.equal(received, COUNT, `messages received (closed: ${JSON.stringify(ws.closeInfo)})`);
	assert.equal(badLength, 0);
	assert.equal(h.digest('hex'), patternSha(TOTAL), '200 MiB intact');
	ws.close();
	const [l] = await tunnelLines(s);
	assert.equal(l.ws_messages_out, COUNT);
	assert.equal(l.ws_messages_in, 1);
	assert.ok(l.bytes_out > TOTAL);
});
