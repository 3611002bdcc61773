// Routing: host matching (exact, *.suffix, *), longest path prefix on a
// segment boundary, host ports and case, and an IPv6 listener.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasIPv6Loopback, startSluice } from './lib/sluice.mjs';
import { readHead, startBackend, startRawServer } from './lib/backend.mjs';
import { rawRequest, request, requestJson } from './lib/client.mjs';

/** One backend and one pool per name; routes refer to pools by those names. */
async function setup(t, names, routes, extra = {}) {
	const pools = {};
	for (const n of names) {
		const b = await startBackend({ name: n, t });
		pools[n] = { servers: [{ name: n, backend: b }] };
	}
	const s = await startSluice({ pools, routes, t, ...extra });
	return async (host, path, opts = {}) => {
		const r = await requestJson(s.port, { path, headers: host === null ? {} : { Host: host }, ...opts });
		return r.status === 200 ? r.json.backend : r.status;
	};
}

test('host: exact beats *.suffix beats *', async (t) => {
	const go = await setup(t, ['exact', 'wild', 'any'], [
		{ name: 'any', host: '*', pool: 'any' },
		{ name: 'wild', host: '*.example.com', pool: 'wild' },
		{ name: 'exact', host: 'api.example.com', pool: 'exact' },
	]);
	assert.equal(await go('api.example.com', '/'), 'exact');
	assert.equal(await go('www.example.com', '/'), 'wild');
	assert.equal(await go('a.b.example.com', '/'), 'wild');
	assert.equal(await go('example.com', '/'), 'any', '*.example.com does not match the bare domain');
	assert.equal(await go('badexample.com', '/'), 'any', 'suffix match is on a label boundary');
	assert.equal(await go('other.org', '/'), 'any');
});

test('host: the longest *.suffix wins', async (t) => {
	const go = await setup(t, ['com', 'eu'], [
		{ name: 'com', host: '*.example.com', pool: 'com' },
		{ name: 'eu', host: '*.eu.example.com', pool: 'eu' },
	]);
	assert.equal(await go('x.eu.example.com', '/'), 'eu');
	assert.equal(await go('x.us.example.com', '/'), 'com');
	assert.equal(await go('eu.example.com', '/'), 'com');
});

test('host: port is ignored and matching is case-insensitive', async (t) => {
	const go = await setup(t, ['exact', 'wild'], [
		{ name: 'exact', host: 'api.example.com', pool: 'exact' },
		{ name: 'wild', host: '*.example.com', pool: 'wild' },
	]);
	assert.equal(await go('api.example.com:8080', '/'), 'exact');
	assert.equal(await go('API.Example.COM', '/'), 'exact');
	assert.equal(await go('API.EXAMPLE.COM:443', '/'), 'exact');
	assert.equal(await go('WWW.Example.Com:8080', '/'), 'wild');
	assert.equal(await go('nothing.test', '/'), 404);
});

test('host routes configured with capitals match lower-case requests', async (t) => {
	const go = await setup(t, ['exact'], [{ name: 'exact', host: 'Mixed.Example.COM', pool: 'exact' }]);
	assert.equal(await go('mixed.example.com', '/'), 'exact');
});

test('path: longest prefix wins', async (t) => {
	const go = await setup(t, ['root', 'api', 'v2'], [
		{ name: 'root', host: '*', path: '/', pool: 'root' },
		{ name: 'v2', host: '*', path: '/api/v2', pool: 'v2' },
		{ name: 'api', host: '*', path: '/api', pool: 'api' },
	]);
	assert.equal(await go('h.test', '/'), 'root');
	assert.equal(await go('h.test', '/other'), 'root');
	assert.equal(await go('h.test', '/api'), 'api');
	assert.equal(await go('h.test', '/api/'), 'api');
	assert.equal(await go('h.test', '/api/users'), 'api');
	assert.equal(await go('h.test', '/api/v2'), 'v2');
	assert.equal(await go('h.test', '/api/v2/users?x=1'), 'v2');
	assert.equal(await go('h.test', '/api?q=1'), 'api', 'the query is not part of the path');
});

test('path: prefixes match on a segment boundary (/api does not take /apix)', async (t) => {
	const go = await setup(t, ['root', 'api', 'v2'], [
		{ name: 'root', host: '*', path: '/', pool: 'root' },
		{ name: 'api', host: '*', path: '/api', pool: 'api' },
		{ name: 'v2', host: '*', path: '/api/v2', pool: 'v2' },
	]);
	assert.equal(await go('h.test', '/apix'), 'root');
	assert.equal(await go('h.test', '/api-docs'), 'root');
	assert.equal(await go('h.test', '/api/v2x'), 'api');
	assert.equal(await go('h.test', '/api/v20/a'), 'api');
});

test('path prefix configured with a trailing slash', async (t) => {
	const go = await setup(t, ['root', 'static'], [
		{ name: 'root', host: '*', path: '/', pool: 'root' },
		{ name: 'static', host: '*', path: '/static/', pool: 'static' },
	]);
	assert.equal(await go('h.test', '/static/a.css'), 'static');
	assert.equal(await go('h.test', '/staticx'), 'root');
});

test('no matching path -> 404', async (t) => {
	const go = await setup(t, ['api'], [{ name: 'api', host: '*', path: '/api', pool: 'api' }]);
	assert.equal(await go('h.test', '/api/x'), 'api');
	assert.equal(await go('h.test', '/web'), 404);
});

test('host is chosen first, then the longest path within it', async (t) => {
	const go = await setup(t, ['exact', 'exact_api', 'any_special'], [
		{ name: 'exact', host: 'app.example.com', path: '/', pool: 'exact' },
		{ name: 'exact_api', host: 'app.example.com', path: '/api', pool: 'exact_api' },
		{ name: 'any_special', host: '*', path: '/special', pool: 'any_special' },
	]);
	assert.equal(await go('app.example.com', '/special/x'), 'exact');
	assert.equal(await go('app.example.com', '/api/x'), 'exact_api');
	assert.equal(await go('other.example.com', '/special/x'), 'any_special');
});

test('HTTP/1.0 request without Host goes to the * route', async (t) => {
	const b = await startBackend({ name: 'any', t });
	const b2 = await startBackend({ name: 'named', t });
	const s = await startSluice({
		pools: { any: { servers: [{ name: 'any', backend: b }] }, named: { servers: [{ name: 'named', backend: b2 }] } },
		routes: [{ host: 'named.test', pool: 'named' }, { host: '*', pool: 'any' }],
		t,
	});
	const r = await rawRequest(s.port, 'GET /echo HTTP/1.0\r\n\r\n', { timeout: 3000 });
	assert.equal(r.responses[0]?.status, 200, r.text);
	assert.equal(JSON.parse(r.responses[0].body.toString()).backend, 'any');
});

test('IPv6 listener on [::1] works', async (t) => {
	if (!(await hasIPv6Loopback())) {
		t.skip('::1 not available');
		return;
	}
	const b = await startBackend({ name: 'v6', t });
	const s = await startSluice({ backends: [b], listen: [{ name: 'v6', host: '::1' }], t });
	const r = await requestJson(s.port, { host: '::1', path: '/echo?v6' });
	assert.equal(r.status, 200);
	assert.equal(r.json.url, '/echo?v6');
	assert.equal(r.json.headers['x-forwarded-for'], '::1');
	const lines = await s.waitForAccessLog(1);
	assert.match(lines[0].client, /^\[::1\]:\d+$|^::1:\d+$/);
});

test('two listeners (IPv4 and IPv6) share the routes', async (t) => {
	const v6 = await hasIPv6Loopback();
	const b = await startBackend({ name: 'a', t });
	const listen = [{ name: 'v4', host: '127.0.0.1' }];
	if (v6) listen.push({ name: 'v6', host: '::1' });
	const s = await startSluice({ backends: [b], listen, t });
	for (const l of s.listeners) {
		const r = await request(l.port, { host: l.host, path: '/echo' });
		assert.equal(r.status, 200, `listener ${l.name}`);
	}
});

// RFC 9112 3.2.2: an absolute-form target's authority replaces Host, and
// the server gets origin-form.
test('absolute-form target: routed by its authority, forwarded in origin-form with that Host', async (t) => {
	const pub = await startBackend({ name: 'public', t });
	const other = await startBackend({ name: 'other', t });
	const s = await startSluice({
		pools: { pub: { servers: [{ name: 'public', backend: pub }] }, other: { servers: [{ name: 'other', backend: other }] } },
		routes: [
			{ name: 'pub', host: 'public.example', pool: 'pub' },
			{ name: 'other', host: 'other.example', pool: 'other' },
		],
		t,
	});
	const r = await rawRequest(s.port, 'GET http://public.example/admin?x=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n');
	assert.equal(r.responses[0]?.status, 200, r.text.slice(0, 300));
	assert.equal(other.requests.length, 0, 'the Host field did not pick the route');
	assert.equal(pub.requests.length, 1, 'routed by the authority');
	const rec = pub.requests[0];
	assert.equal(`${rec.method} ${rec.url} HTTP/${rec.httpVersion}`, 'GET /admin?x=1 HTTP/1.1');
	assert.equal(rec.headers.host, 'public.example');
	assert.equal(rec.rawHeaders.filter((x, i) => i % 2 === 0 && x.toLowerCase() === 'host').length, 1, 'exactly one Host');
	assert.equal(rec.headers['x-forwarded-host'], 'public.example');
	const line = (await s.waitForAccessLog(1))[0];
	assert.equal(line.server, 'pub/public');
});

test('absolute-form target without a path is forwarded as "/"; the scheme is case-insensitive', async (t) => {
	const raw = await startRawServer(async (sock, i, r) => {
		const h = await readHead(sock);
		r.requests.push(h);
		sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
	}, { t });
	const s = await startSluice({ backends: [raw], routes: [{ host: 'public.example', pool: 'p' }], t });
	for (const target of ['http://public.example', 'HTTP://Public.Example:8080/p']) {
		const r = await rawRequest(s.port, `GET ${target} HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n`);
		assert.equal(r.responses[0]?.status, 200, `${target}: ${r.text.slice(0, 200)}`);
	}
	assert.equal(raw.requests.length, 2);
	assert.equal(raw.requests[0].startLine, 'GET / HTTP/1.1');
	assert.equal(raw.requests[0].headers.host, 'public.example');
	assert.equal(raw.requests[1].startLine, 'GET /p HTTP/1.1');
	assert.equal(raw.requests[1].headers.host.toLowerCase(), 'public.example:8080', 'the authority, port included');
});
