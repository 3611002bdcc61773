// PROXY protocol v1 and v2 on listeners with `proxy_protocol = on`: the
// header's source address becomes the client (X-Forwarded-For, the access
// log's "client", with the real peer as "peer"), in one piece or in many,
// before HTTP or before TLS; malformed headers, plain HTTP and silent
// clients are closed without a byte forwarded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { SLOW, sleep, startSluice } from './lib/sluice.mjs';
import { startBackend } from './lib/backend.mjs';
import { RawConn, parseResponses } from './lib/client.mjs';
import { testPki } from './lib/tls.mjs';

const SIG = Buffer.from([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]);

/** A v2 header: verCmd (0x21 PROXY, 0x20 LOCAL), fam (0x11 INET/STREAM...), body. */
function v2(verCmd, fam, body = Buffer.alloc(0), len = body.length) {
	const h = Buffer.alloc(16);
	SIG.copy(h);
	h[12] = verCmd;
	h[13] = fam;
	h.writeUInt16BE(len, 14);
	return Buffer.concat([h, body]);
}

function ipv4(s) {
	return Buffer.from(s.split('.').map(Number));
}

function ipv6(s) {
	// Enough for the test addresses: "a:b::c" forms.
	const [head, tail = ''] = s.split('::');
	const h = head ? head.split(':') : [];
	const tl = tail ? tail.split(':') : [];
	const groups = [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl];
	const b = Buffer.alloc(16);
	groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
	return b;
}

function ports(sp, dp) {
	const b = Buffer.alloc(4);
	b.writeUInt16BE(sp, 0);
	b.writeUInt16BE(dp, 2);
	return b;
}

/** TLVs: an ALPN "h2", an empty NOOP, a custom 0xEA of 5 bytes. */
const TLVS = Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x00, 0xEA, 0x00, 0x05, 1, 2, 3, 4, 5]);

function v2Inet(src, sp, dst, dp, tlvs = TLVS) {
	return v2(0x21, 0x11, Buffer.concat([ipv4(src), ipv4(dst), ports(sp, dp), tlvs]));
}

function v2Inet6(src, sp, dst, dp, tlvs = TLVS) {
	return v2(0x21, 0x21, Buffer.concat([ipv6(src), ipv6(dst), ports(sp, dp), tlvs]));
}

function get(path = '/echo', extra = '', close = true) {
	return `GET ${path} HTTP/1.1\r\nHost: proxied.test\r\n${extra}${close ? 'Connection: close\r\n' : ''}\r\n`;
}

/**
 * sluice with a listener "edge" (proxy_protocol = on, TLS when tlsCert is
 * given) and a plain listener "web" without it, in front of backend b.
 */
async function proxySluice(t, b, { clientHeader = '3s', tlsCert } = {}) {
	return startSluice({
		t,
		listen: [{ name: 'edge', host: '127.0.0.1' }, { name: 'web', host: '127.0.0.1' }],
		config: (ctx) => {
			const [edge, web] = ctx.listeners;
			const tlsBlock = tlsCert
				? `\ttls { certificate "c" { chain = ${JSON.stringify(tlsCert.chain)} key = ${JSON.stringify(tlsCert.key)} } }\n`
				: '';
			return `workers = 1
log_level = info
access_log = ${JSON.stringify(ctx.accessLogPath)}
shutdown_timeout = 1s
listener "edge" {
	address = "127.0.0.1:${edge.port}"
	proxy_protocol = on
${tlsBlock}}
listener "web" { address = "127.0.0.1:${web.port}" }
pool "p" { server "a" { address = "${b.address}" } }
route "all" { pool = "p" }
timeouts { client_header = ${clientHeader} }
`;
		},
	});
}

/** Write the pieces (with a pause between) and collect the responses until close. */
async function exchange(port, pieces, { responses = 1, pause = 0 } = {}) {
	const c = await RawConn.open(port);
	for (const [i, p] of pieces.entries()) {
		if (i > 0 && pause) await sleep(pause);
		await c.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
	}
	const rs = await c.waitResponses(responses);
	return { c, rs };
}

function lastLine(s) {
	const lines = s.accessLog();
	return lines[lines.length - 1];
}

test('v1 TCP4, TCP6 and UNKNOWN: the header source is the client', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await proxySluice(t, b);
	const port = s.listeners[0].port;

	// Header and request in one write: nothing past the header is lost.
	let { c, rs } = await exchange(port, [`PROXY TCP4 203.0.113.7 10.0.0.1 40000 8080\r\n${get()}`]);
	assert.equal(rs[0].status, 200);
	assert.equal(JSON.parse(rs[0].body).headers['x-forwarded-for'], '203.0.113.7');
	let l = (await s.waitForAccessLog(1))[0];
	assert.equal(l.client, '203.0.113.7:40000');
	assert.equal(l.peer, `127.0.0.1:${c.localPort}`);
	assert.equal(l.termination, 'ok');

	// TCP6, an X-Forwarded-For to append to, the header split in pieces.
	const hdr = 'PROXY TCP6 2001:db8::5 ::1 5555 80\r\n';
	({ c, rs } = await exchange(port, [hdr.slice(0, 3), hdr.slice(3, 20), hdr.slice(20, -1), hdr.slice(-1),
		get('/echo', 'X-Forwarded-For: 198.51.100.1\r\n')], { pause: 30 }));
	assert.equal(rs[0].status, 200);
	assert.equal(JSON.parse(rs[0].body).headers['x-forwarded-for'], '198.51.100.1, 2001:db8::5');
	await s.waitForAccessLog(2);
	l = lastLine(s);
	assert.equal(l.client, '[2001:db8::5]:5555');

	// UNKNOWN: the connection's own peer is the client; two requests on it.
	({ c, rs } = await exchange(port, [`PROXY UNKNOWN\r\n${get('/echo', '', false)}${get()}`], { responses: 2 }));
	assert.equal(rs.length, 2);
	for (const r of rs) assert.equal(JSON.parse(r.body).headers['x-forwarded-for'], '127.0.0.1');
	const lines = await s.waitForAccessLog(4);
	for (const x of lines.slice(2)) {
		assert.equal(x.client, `127.0.0.1:${c.localPort}`);
		assert.ok(!('peer' in x), 'no peer field when the peer is the client');
	}
});

test('v2 PROXY over INET and INET6 with TLVs, and LOCAL', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await proxySluice(t, b);
	const port = s.listeners[0].port;

	let { rs } = await exchange(port, [Buffer.concat([v2Inet('192.0.2.10', 1234, '10.1.1.1', 443), Buffer.from(get())])]);
	assert.equal(JSON.parse(rs[0].body).headers['x-forwarded-for'], '192.0.2.10');
	assert.equal((await s.waitForAccessLog(1))[0].client, '192.0.2.10:1234');

	// Byte by byte, keep-alive: every exchange of the connection has it.
	const h6 = v2Inet6('2001:db8::77', 65535, '2001:db8::1', 443);
	const pieces = [...h6].map((x) => Buffer.from([x]));
	({ rs } = await exchange(port, [...pieces, get('/echo', '', false) + get()], { responses: 2 }));
	for (const r of rs) assert.equal(JSON.parse(r.body).headers['x-forwarded-for'], '2001:db8::77');
	let lines = await s.waitForAccessLog(3);
	assert.deepEqual(lines.slice(1).map((x) => x.client), ['[2001:db8::77]:65535', '[2001:db8::77]:65535']);

	// LOCAL (a balancer's health check): the peer is the client.
	let c;
	({ c, rs } = await exchange(port, [Buffer.concat([v2(0x20, 0x00), Buffer.from(get())])]));
	assert.equal(JSON.parse(rs[0].body).headers['x-forwarded-for'], '127.0.0.1');
	lines = await s.waitForAccessLog(4);
	assert.equal(lines[3].client, `127.0.0.1:${c.localPort}`);
	// PROXY over UNSPEC: the same.
	({ c, rs } = await exchange(port, [Buffer.concat([v2(0x21, 0x00, TLVS), Buffer.from(get())])]));
	assert.equal(JSON.parse(rs[0].body).headers['x-forwarded-for'], '127.0.0.1');
});

test('malformed headers and plain HTTP close the connection, nothing forwarded', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await proxySluice(t, b);
	const port = s.listeners[0].port;
	const inet = Buffer.concat([ipv4('1.2.3.4'), ipv4('5.6.7.8'), ports(1, 2)]);
	const badSig = v2Inet('1.2.3.4', 1, '5.6.7.8', 2);
	badSig[7] = 0x52;
	const bad = [
		get(),							// no header at all
		'PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\n',		// LF without CR
		'PROXY TCP4 1.2.3.999 5.6.7.8 1111 2222\r\n',
		'PROXY TCP4 ::1 ::1 1111 2222\r\n',
		'PROXY TCP6 1.2.3.4 5.6.7.8 1111 2222\r\n',
		'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2222\r\n',
		'PROXY TCP4 1.2.3.4 5.6.7.8 1111\r\n',
		'PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222 \r\n',
		'PROXY UDP4 1.2.3.4 5.6.7.8 1111 2222\r\n',
		`PROXY UNKNOWN ${'x'.repeat(100)}\r\n`,			// over 107 bytes
		badSig,
		v2(0x11, 0x11, inet),					// version 1
		v2(0x23, 0x11, inet),					// command 3
		v2(0x21, 0x31, Buffer.alloc(216)),			// AF_UNIX
		v2(0x21, 0x12, inet),					// DGRAM
		v2(0x21, 0x11, inet.subarray(0, 11)),			// too short for INET
		v2(0x21, 0x11, Buffer.alloc(4097)),			// over the bound
		v2(0x21, 0x11, Buffer.concat([inet, Buffer.from([0x04, 0x00])])),	// truncated TLV
		v2(0x21, 0x11, Buffer.concat([inet, Buffer.from([0x04, 0x00, 0x09, 1])])),	// TLV too long
	];
	for (const h of bad) {
		const c = await RawConn.open(port);
		await c.write(h);
		await c.write(get());
		assert.ok(await c.waitClose(3000), `closed after ${JSON.stringify(h.toString('latin1'))}`);
		assert.equal(c.length, 0, `no answer after ${JSON.stringify(h.toString('latin1'))}: ${c.text}`);
	}
	await s.waitForLog(/bad PROXY header: v2: TLV longer than the header/);
	assert.equal(b.requests.length, 0, 'nothing reached the backend');
	assert.equal(s.accessLog().length, 0, 'no exchange logged');
	const reasons = s.errorLog().match(/\[info\] s\d+ 127\.0\.0\.1:\d+: bad PROXY header: /g) || [];
	assert.equal(reasons.length, bad.length, s.errorLog());

	// The listener without proxy_protocol is untouched.
	const web = s.listeners[1].port;
	const { rs } = await exchange(web, [get()]);
	assert.equal(JSON.parse(rs[0].body).headers['x-forwarded-for'], '127.0.0.1');
});

test('a client that sends nothing, or half a header, is closed after client_header', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await proxySluice(t, b, { clientHeader: '500ms' });
	const port = s.listeners[0].port;
	for (const first of [null, 'PROXY TCP4 1.2.3.4 ', v2(0x21, 0x11).subarray(0, 14)]) {
		const c = await RawConn.open(port);
		const t0 = Date.now();
		if (first) await c.write(first);
		assert.ok(await c.waitClose(5000), 'closed');
		const el = Date.now() - t0;
		assert.ok(el >= 400 && el < 2500 * SLOW, `closed after ${el} ms`);
		assert.equal(c.length, 0);
	}
	await s.waitForLog(/PROXY header incomplete after 500 ms/);
	assert.equal(b.requests.length, 0);
});

/** PROXY header on a plain socket, then TLS over the same socket. */
function tlsAfterProxy(port, header, { cork = false } = {}) {
	return new Promise((resolve, reject) => {
		const raw = net.connect({ host: '127.0.0.1', port }, () => {
			if (cork) raw.cork();
			raw.write(header);
			const sock = tls.connect({ socket: raw, servername: 'localhost', ca: testPki().caPem });
			if (cork) setImmediate(() => raw.uncork());
			const timer = setTimeout(() => { sock.destroy(); reject(new Error('TLS timeout')); }, 5000 * SLOW);
			sock.once('secureConnect', () => {
				sock.write(get());
				const chunks = [];
				sock.on('data', (d) => chunks.push(d));
				sock.on('end', () => {
					clearTimeout(timer);
					resolve({ localPort: raw.localPort, rs: parseResponses(Buffer.concat(chunks), { closed: true }) });
				});
			});
			sock.once('error', (e) => { clearTimeout(timer); reject(e); });
		});
		raw.once('error', reject);
	});
}

test('PROXY then TLS on a TLS listener', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const pki = testPki();
	const s = await proxySluice(t, b, { tlsCert: pki.localhostEc });
	const port = s.listeners[0].port;

	let r = await tlsAfterProxy(port, 'PROXY TCP4 203.0.113.9 10.0.0.1 41000 443\r\n');
	assert.equal(r.rs[0].status, 200);
	let echo = JSON.parse(r.rs[0].body);
	assert.equal(echo.headers['x-forwarded-for'], '203.0.113.9');
	assert.equal(echo.headers['x-forwarded-proto'], 'https');
	let l = (await s.waitForAccessLog(1))[0];
	assert.equal(l.client, '203.0.113.9:41000');
	assert.equal(l.peer, `127.0.0.1:${r.localPort}`);
	assert.equal(typeof l.tls_version, 'string');

	// v2, with the ClientHello in the same write as the header when the
	// socket coalesces them: nothing past the header may be eaten.
	r = await tlsAfterProxy(port, v2Inet6('2001:db8::9', 4242, '2001:db8::1', 443), { cork: true });
	echo = JSON.parse(r.rs[0].body);
	assert.equal(echo.headers['x-forwarded-for'], '2001:db8::9');
	l = (await s.waitForAccessLog(2))[1];
	assert.equal(l.client, '[2001:db8::9]:4242');

	// TLS without the header first: refused before any handshake.
	const c = await RawConn.open(port);
	await c.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10]));
	assert.ok(await c.waitClose(3000));
	assert.equal(c.length, 0);
	await s.waitForLog(/bad PROXY header: not a PROXY protocol header/);
	assert.equal(b.requests.length, 2);
});

test('rate limits key on the PROXY source address, v1 and v2 alike', async (t) => {
	const b = await startBackend({ name: 'a', t });
	const s = await startSluice({
		t,
		listen: [{ name: 'edge', host: '127.0.0.1' }],
		config: (ctx) => `workers = 1
access_log = ${JSON.stringify(ctx.accessLogPath)}
listener "edge" {
	address = "127.0.0.1:${ctx.listeners[0].port}"
	proxy_protocol = on
}
pool "p" { server "a" { address = "${b.address}" } }
ratelimit "per-client" { rate = 1 per = 60s key = client }
route "all" { pool = "p" ratelimit = "per-client" }
`,
	});
	const port = s.listeners[0].port;
	const status = async (header) => (await exchange(port, [header, get()])).rs[0].status;

	// One request a minute per client: the first from each source passes,
	// the next one from the same source is refused, whichever version
	// carried it; all connections come from 127.0.0.1.
	assert.equal(await status('PROXY TCP4 203.0.113.7 10.0.0.1 40000 8080\r\n'), 200);
	assert.equal(await status('PROXY TCP4 203.0.113.7 10.0.0.1 40001 8080\r\n'), 429);
	assert.equal(await status(v2Inet('203.0.113.7', 40002, '10.0.0.1', 8080)), 429);
	assert.equal(await status(v2Inet('203.0.113.8', 40003, '10.0.0.1', 8080)), 200);
	assert.equal(await status('PROXY TCP4 203.0.113.9 10.0.0.1 40004 8080\r\n'), 200);
	assert.equal(await status(v2Inet6('2001:db8::5', 40005, '2001:db8::1', 8080)), 200);
	assert.equal(await status('PROXY TCP6 2001:db8::5 2001:db8::1 40006 8080\r\n'), 429);
	const refused = s.accessLog().filter((l) => l.status === 429);
	assert.deepEqual(refused.map((l) => [l.client.replace(/:\d+$/, ''), l.termination]),
		[['203.0.113.7', 'rate_limited'], ['203.0.113.7', 'rate_limited'], ['[2001:db8::5]', 'rate_limited']]);
});
