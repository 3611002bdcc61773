// TLS peers and material for the TLS tests: a test PKI generated with the
// openssl CLI at run time (no key is stored in the tree), sluice configs
// with tls sections, `openssl s_client` runs and the parsing of what they
// print, a node:https client and an https backend. Does not speak plain
// HTTP (see client.mjs) nor start plain backends (see backend.mjs).

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { RawConn } from './client.mjs';
import { SLOW, startSluice, trackProcess } from './sluice.mjs';

/* ---------- the openssl command ---------- */

/** Run `openssl args...` to completion; throws with its stderr on failure. */
export function openssl(args, { input, cwd, timeout = 30000 } = {}) {
	const r = spawnSync('openssl', args, { input, cwd, encoding: 'utf8', timeout, killSignal: 'SIGKILL' });
	if (r.error) throw new Error(`openssl ${args.join(' ')}: ${r.error.message}`);
	if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr}`);
	return r.stdout;
}

/* ---------- the test PKI ---------- */

function newKey(file, type) {
	if (type === 'rsa') openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file]);
	else openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
}

/*
 * A CA certificate: self-signed (root) or signed by parent (an
 * intermediate). Returns {name, cert, key}.
 */
function makeCa(dir, name, cn, parent) {
	const key = path.join(dir, `${name}.key`);
	const cert = path.join(dir, `${name}.pem`);
	newKey(key, 'ec');
	const ext = path.join(dir, `${name}.ext`);
	fs.writeFileSync(ext, [
		'basicConstraints = critical, CA:TRUE',
		'keyUsage = critical, keyCertSign, cRLSign',
		'subjectKeyIdentifier = hash',
		'authorityKeyIdentifier = keyid:always',
		'',
	].join('\n'));
	if (!parent) {
		openssl(['req', '-x509', '-new', '-key', key, '-subj', `/CN=${cn}`, '-days', '30', '-sha256',
			'-addext', 'basicConstraints = critical, CA:TRUE', '-addext', 'keyUsage = critical, keyCertSign, cRLSign',
			'-out', cert]);
	} else {
		const csr = path.join(dir, `${name}.csr`);
		openssl(['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr]);
		openssl(['x509', '-req', '-in', csr, '-CA', parent.cert, '-CAkey', parent.key, '-set_serial', serial(),
			'-days', '30', '-sha256', '-extfile', ext, '-out', cert]);
	}
	return { name, cert, key };
}

function serial() {
	// Positive, 64 bits, never starting with a zero byte.
	return `0x${(0x10 + crypto.randomInt(0xf0)).toString(16)}${crypto.randomBytes(7).toString('hex')}`;
}

/*
 * A leaf certificate signed by ca. opts: cn, dns (names), ips, type
 * ('ec' | 'rsa'), usage ('server' | 'client'), expired (valid in 2020
 * only), chainWith (extra PEM files appended to the chain file).
 * Writes NAME.pem (the chain: leaf first), NAME.key and NAME-full.pem
 * (chain and key in one file). Returns {name, chain, key, full, cn}.
 */
function makeLeaf(dir, ca, name, { cn, dns = [], ips = [], type = 'ec', usage = 'server', expired = false, chainWith = [] }) {
	const key = path.join(dir, `${name}.key`);
	const leaf = path.join(dir, `${name}.leaf.pem`);
	const chain = path.join(dir, `${name}.pem`);
	const full = path.join(dir, `${name}-full.pem`);
	const csr = path.join(dir, `${name}.csr`);
	const ext = path.join(dir, `${name}.ext`);
	newKey(key, type);
	openssl(['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr]);
	const sans = [...dns.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)];
	fs.writeFileSync(ext, [
		'basicConstraints = CA:FALSE',
		`keyUsage = critical, ${type === 'rsa' ? 'digitalSignature, keyEncipherment' : 'digitalSignature'}`,
		`extendedKeyUsage = ${usage === 'client' ? 'clientAuth' : 'serverAuth'}`,
		...(sans.length ? [`subjectAltName = ${sans.join(', ')}`] : []),
		'authorityKeyIdentifier = keyid',
		'',
	].join('\n'));
	if (!expired) {
		openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial(),
			'-days', '30', '-sha256', '-extfile', ext, '-out', leaf]);
	} else {
		// openssl x509 cannot back-date; openssl ca can (-startdate/-enddate).
		const cadir = path.join(dir, `${name}.ca`);
		fs.mkdirSync(cadir);
		fs.writeFileSync(path.join(cadir, 'index.txt'), '');
		fs.writeFileSync(path.join(cadir, 'serial'), '1000\n');
		const cnf = path.join(cadir, 'ca.cnf');
		fs.writeFileSync(cnf, [
			'[ ca ]', 'default_ca = test_ca',
			'[ test_ca ]',
			`database = ${cadir}/index.txt`, `new_certs_dir = ${cadir}`, `serial = ${cadir}/serial`,
			'default_md = sha256', 'policy = any', 'unique_subject = no', 'email_in_dn = no',
			'[ any ]', 'commonName = supplied', '',
		].join('\n'));
		openssl(['ca', '-batch', '-config', cnf, '-cert', ca.cert, '-keyfile', ca.key, '-in', csr,
			'-startdate', '20200101000000Z', '-enddate', '20200201000000Z', '-extfile', ext, '-notext', '-out', leaf]);
	}
	fs.writeFileSync(chain, [leaf, ...chainWith].map((f) => fs.readFileSync(f, 'utf8')).join(''));
	fs.writeFileSync(full, fs.readFileSync(chain, 'utf8') + fs.readFileSync(key, 'utf8'));
	return { name, chain, key, full, cn, cert: chain };
}

let pkiCache = null;

/**
 * The test PKI, generated once per test process into a temp dir removed at
 * exit. Everything is signed by `ca` unless said otherwise:
 *   localhostEc, localhostRsa  CN=localhost, DNS:localhost, IP:127.0.0.1 (ECDSA P-256 / RSA 2048)
 *   aTest                      CN=a.test, DNS:a.test
 *   wildB                      CN=*.b.test, DNS:*.b.test
 *   multi                      CN=multi.test, DNS:a.test, DNS:c.test (loses a.test to aTest when after it)
 *   chained                    CN=d.test, signed by the intermediate `inter`; chain = leaf + inter
 *   expired                    like localhostEc, valid in January 2020 only
 *   rogue                      like localhostEc, signed by `rogueCa` (not trusted)
 *   otherName                  CN=other.test, DNS:other.test (a name mismatch for "localhost")
 *   client                     CN=sluice-client, clientAuth
 *   localhostEc2               like localhostEc, another key (for reloads: "certificate B")
 * Each is {chain, key, full, cn}; ca, inter, rogueCa are {cert, key}.
 * badPem: a file with a PEM armour around garbage.
 */
export function testPki() {
	if (pkiCache) return pkiCache;
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-pki-'));
	process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
	const ca = makeCa(dir, 'ca', 'sluice test CA');
	const inter = makeCa(dir, 'inter', 'sluice test intermediate', ca);
	const rogueCa = makeCa(dir, 'rogue-ca', 'rogue CA');
	const local = { cn: 'localhost', dns: ['localhost'], ips: ['127.0.0.1'] };
	const p = {
		dir,
		ca,
		inter,
		rogueCa,
		localhostEc: makeLeaf(dir, ca, 'localhost-ec', local),
		localhostRsa: makeLeaf(dir, ca, 'localhost-rsa', { ...local, type: 'rsa' }),
		localhostEc2: makeLeaf(dir, ca, 'localhost-ec2', { ...local, cn: 'localhost-b' }),
		aTest: makeLeaf(dir, ca, 'a-test', { cn: 'a.test', dns: ['a.test'] }),
		wildB: makeLeaf(dir, ca, 'wild-b', { cn: '*.b.test', dns: ['*.b.test'] }),
		multi: makeLeaf(dir, ca, 'multi', { cn: 'multi.test', dns: ['a.test', 'c.test'] }),
		chained: makeLeaf(dir, inter, 'chained', { cn: 'd.test', dns: ['d.test'], chainWith: [inter.cert] }),
		expired: makeLeaf(dir, ca, 'expired', { ...local, cn: 'expired.localhost', expired: true }),
		rogue: makeLeaf(dir, rogueCa, 'rogue', { ...local, cn: 'rogue.localhost' }),
		otherName: makeLeaf(dir, ca, 'other-name', { cn: 'other.test', dns: ['other.test'] }),
		client: makeLeaf(dir, ca, 'client', { cn: 'sluice-client', usage: 'client' }),
	};
	p.badPem = path.join(dir, 'bad.pem');
	fs.writeFileSync(p.badPem, '-----BEGIN CERTIFICATE-----\nthis is not base64 at all!\n-----END CERTIFICATE-----\n');
	p.caPem = fs.readFileSync(ca.cert);
	pkiCache = p;
	return p;
}

/** A ticket_key_file with one fresh 80-byte key, mode 0600, in dir. */
export function ticketKeyFile(dir, name = 'tickets.key') {
	const file = path.join(dir, name);
	const key = Buffer.from(openssl(['rand', '-hex', '80']).trim(), 'hex').toString('base64');
	fs.writeFileSync(file, `# test ticket key\n${key}\n`, { mode: 0o600 });
	return file;
}

/* ---------- sluice configs with TLS ---------- */

function value(v) {
	if (typeof v === 'number' || typeof v === 'boolean') return String(v);
	return /^[A-Za-z0-9._-]+$/.test(v) ? v : JSON.stringify(v);
}

/*
 * Config text. opts:
 *   workers, logLevel, accessLog ('file' | '-' | 'off'), shutdownTimeout
 *   listeners: [{name, tls?, redirect?}], in startSluice's listen order;
 *     tls: {certs: [{name?, chain, key?}] or [pkiLeaf...], ...other tls
 *     directives (min_version, tickets, hsts, ticket_key_file...)};
 *     redirect: a value for redirect_https, or {to: 'LISTENER'} for that
 *     listener's port
 *   pools: {NAME: {servers: [{name, address, tls_server_name?}], ...pool
 *     directives (tls, tls_ca, tls_server_name, tls_cert, retries...)}}
 *   routes: [{name, host, path, pool, sticky}] (default: all to the first pool)
 *   stickyKey, timeouts: {client_header: '1s'}, extra
 */
export function tlsConfigText(opts, ctx) {
	const L = [];
	L.push(`workers = ${opts.workers ?? 1}`);
	L.push(`log_level = ${opts.logLevel ?? 'info'}`);
	const al = opts.accessLog ?? 'file';
	L.push(`access_log = ${JSON.stringify(al === 'file' ? ctx.accessLogPath : al)}`);
	L.push(`shutdown_timeout = ${opts.shutdownTimeout ?? '2s'}`);
	if (opts.stickyKey) L.push(`sticky_key = ${JSON.stringify(opts.stickyKey)}`);
	const portOf = (name) => {
		const l = ctx.listeners.find((x) => x.name === name);
		if (!l) throw new Error(`no listener ${name}`);
		return l.port;
	};
	for (const l of ctx.listeners) {
		const spec = (opts.listeners || []).find((x) => x.name === l.name) || {};
		L.push(`listener "${l.name}" {`);
		L.push(`\taddress = "${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}"`);
		if (spec.redirect !== undefined) {
			const r = typeof spec.redirect === 'object' ? String(portOf(spec.redirect.to)) : String(spec.redirect);
			L.push(`\tredirect_https = ${JSON.stringify(r)}`);
		}
		if (spec.tls) {
			const { certs, ...rest } = spec.tls;
			L.push('\ttls {');
			certs.forEach((c, i) => {
				const key = c.key ? ` key = ${JSON.stringify(c.key)}` : '';
				L.push(`\t\tcertificate "${c.certName || c.name || `c${i}`}" { chain = ${JSON.stringify(c.chain)}${key} }`);
			});
			for (const [k, v] of Object.entries(rest)) L.push(`\t\t${k} = ${value(v)}`);
			L.push('\t}');
		}
		L.push('}');
	}
	const pools = opts.pools || {};
	for (const [pname, p] of Object.entries(pools)) {
		const { servers, ...rest } = p;
		L.push(`pool "${pname}" {`);
		for (const [k, v] of Object.entries(rest)) {
			if (v !== undefined) L.push(`\t${k} = ${value(v)}`);
		}
		servers.forEach((srv, i) => {
			const extra = srv.tls_server_name ? ` tls_server_name = ${JSON.stringify(srv.tls_server_name)}` : '';
			L.push(`\tserver "${srv.name || String.fromCharCode(97 + i)}" { address = "${srv.address}"${extra} }`);
		});
		L.push('}');
	}
	const first = Object.keys(pools)[0];
	const routes = opts.routes || [{ name: 'all', host: '*', path: '/', pool: first }];
	routes.forEach((r, i) => {
		const parts = [`host = "${r.host ?? '*'}"`, `path = "${r.path ?? '/'}"`, `pool = "${r.pool}"`];
		if (r.sticky) parts.push(`sticky = "${r.sticky}"`);
		L.push(`route "${r.name || `r${i}`}" { ${parts.join(' ')} }`);
	});
	if (opts.timeouts) {
		L.push('timeouts {');
		for (const [k, v] of Object.entries(opts.timeouts)) L.push(`\t${k} = ${v}`);
		L.push('}');
	}
	if (opts.extra) L.push(opts.extra);
	return L.join('\n') + '\n';
}

/**
 * startSluice() with tlsConfigText(opts): listeners on 127.0.0.1 named by
 * opts.listeners. The result also has portOf(name).
 */
export async function startTlsSluice(opts) {
	const listen = opts.listeners.map((l) => ({ name: l.name, host: l.host || '127.0.0.1', ...(l.port ? { port: l.port } : {}) }));
	const s = await startSluice({ listen, config: (ctx) => tlsConfigText(opts, ctx), t: opts.t, env: opts.env });
	s.portOf = (name) => s.listeners.find((l) => l.name === name).port;
	return s;
}

/** A plain pool of backends for tlsConfigText: {servers: [...]}. */
export function plainPool(backends, extra = {}) {
	return { ...extra, servers: backends.map((b, i) => ({ name: b.name && /^[a-z0-9-]+$/i.test(b.name) ? b.name : String.fromCharCode(97 + i), address: b.address })) };
}

/* ---------- openssl s_client ---------- */

/**
 * One `openssl s_client -connect 127.0.0.1:PORT` run. opts:
 *   servername (SNI; none when absent: -noservername), alpn, args (more
 *   options, e.g. ['-tls1_2']), input (written to stdin, then the client
 *   waits for the server to close: -ign_eof; without input stdin is
 *   /dev/null and the client leaves after the handshake), sessOut, sessIn,
 *   timeout (ms, times SLOW; the client is killed after it).
 * Resolves {code, signal, timedOut, out (stdout + stderr), stdout, stderr}.
 */
export function sClient(port, { servername, alpn, args = [], input, sessOut, sessIn, timeout = 5000, caFile } = {}) {
	const argv = ['s_client', '-connect', `127.0.0.1:${port}`];
	if (servername) argv.push('-servername', servername);
	else argv.push('-noservername');
	if (alpn) argv.push('-alpn', alpn);
	if (caFile) argv.push('-CAfile', caFile);
	if (sessOut) argv.push('-sess_out', sessOut);
	if (sessIn) argv.push('-sess_in', sessIn);
	if (input !== undefined) argv.push('-ign_eof');
	argv.push(...args);
	return new Promise((resolve) => {
		const proc = trackProcess(spawn('openssl', argv, { stdio: [input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'] }));
		let stdout = '';
		let stderr = '';
		let timedOut = false;
		proc.stdout.setEncoding('latin1');
		proc.stderr.setEncoding('latin1');
		proc.stdout.on('data', (d) => { stdout += d; });
		proc.stderr.on('data', (d) => { stderr += d; });
		if (input !== undefined) {
			proc.stdin.on('error', () => {});
			proc.stdin.end(input);
		}
		const timer = setTimeout(() => {
			timedOut = true;
			try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
		}, timeout * SLOW);
		proc.once('error', (e) => { stderr += `spawn error: ${e.message}`; });
		proc.once('close', (code, signal) => {
			clearTimeout(timer);
			resolve({ code, signal, timedOut, stdout, stderr, out: `${stdout}\n${stderr}`, argv: `openssl ${argv.join(' ')}` });
		});
	});
}

/** From s_client output: {state: 'New'|'Reused', version, cipher} or null (no handshake). */
export function handshakeOf(out) {
	const m = /^(New|Reused), (TLSv[\d.]+|SSLv\d|\(NONE\)), Cipher is (\S+)/m.exec(out);
	if (!m || m[3] === '(NONE)') return null;
	return { state: m[1], version: m[2], cipher: m[3] };
}

/** The peer certificate's subject line as s_client prints it ("CN = a.test"), or null. */
export function subjectOf(out) {
	const m = /^subject=\s*(.*)$/m.exec(out);
	return m ? m[1].trim() : null;
}

/** The CN of the peer certificate, or null. */
export function peerCn(out) {
	const s = subjectOf(out);
	const m = s && /CN\s*=\s*([^,/]+)/.exec(s);
	return m ? m[1].trim() : null;
}

/** "http/1.1", or null when s_client says "No ALPN negotiated", or undefined when it says neither. */
export function alpnOf(out) {
	const m = /^ALPN protocol: (\S+)/m.exec(out);
	if (m) return m[1];
	if (/^No ALPN negotiated/m.test(out)) return null;
	return undefined;
}

/** Bits of the server's public key ("Server public key is 256 bit"), or null. */
export function serverKeyBits(out) {
	const m = /^Server public key is (\d+) bit/m.exec(out);
	return m ? Number(m[1]) : null;
}

/** Summary of an s_client run for assertion messages. */
export function describe(r) {
	const lines = r.out.split('\n').filter((l) => /^(New|Reused|subject|issuer|ALPN|No ALPN|Verif|Protocol|Server public|Peer sig)|error|alert|errno|CONNECTED/i.test(l.trim()));
	return `${r.argv}\nexit ${r.code}${r.timedOut ? ' (killed on timeout)' : ''}\n${lines.join('\n')}`;
}

/** An HTTP/1.1 request with Connection: close, for s_client's stdin. */
export function closingRequest(path = '/', host = 'localhost') {
	return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
}

/* ---------- node:https client ---------- */

/**
 * One request over TLS with node:https, trusting the test CA. opts as for
 * client.mjs's request(), plus servername (default 'localhost' when host is
 * an IP; '' to send none), ca, cert/key, agent (default false), and any
 * other tls option. Resolves {status, headers, body, tlsVersion, cipher,
 * alpn, sessionReused, localPort}; rejects on errors and timeout.
 */
export function httpsRequest(port, opts = {}) {
	const { method = 'GET', path: p = '/', headers = {}, body, host = '127.0.0.1', agent = false, timeout = 10000, servername = 'localhost', ca = testPki().caPem, ...tlsOpts } = opts;
	return new Promise((resolve, reject) => {
		const req = https.request({ host, port, method, path: p, headers, agent, ca, servername: servername || undefined, ...tlsOpts });
		const timer = setTimeout(() => {
			const e = new Error(`https request ${method} ${p} timed out after ${timeout * SLOW} ms`);
			e.code = 'TEST_TIMEOUT';
			req.destroy(e);
		}, timeout * SLOW);
		req.on('error', (e) => { clearTimeout(timer); reject(e); });
		req.on('response', (res) => {
			const sock = res.socket;
			const info = {
				tlsVersion: sock.getProtocol && sock.getProtocol(),
				// OpenSSL's name ("ECDHE-ECDSA-AES256-GCM-SHA384"), as sluice logs it.
				cipher: sock.getCipher && sock.getCipher() && sock.getCipher().name,
				alpn: sock.alpnProtocol,
				sessionReused: sock.isSessionReused && sock.isSessionReused(),
				localPort: sock.localPort,
			};
			const chunks = [];
			res.on('data', (d) => chunks.push(d));
			res.on('end', () => {
				clearTimeout(timer);
				const out = { status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks), ...info };
				try { out.json = JSON.parse(out.body.toString('utf8')); } catch { out.json = null; }
				resolve(out);
			});
			res.on('error', (e) => { clearTimeout(timer); reject(e); });
		});
		if (body === undefined) req.end();
		else req.end(body);
	});
}

/**
 * A raw TLS connection (a RawConn over a TLSSocket) to 127.0.0.1:port,
 * trusting the test CA; resolves once the handshake is done. For
 * conversations that need the same connection over time.
 */
export function openTlsRaw(port, { servername = 'localhost', timeout = 5000, ...tlsOpts } = {}) {
	return new Promise((resolve, reject) => {
		const sock = tls.connect({ host: '127.0.0.1', port, servername, ca: testPki().caPem, ...tlsOpts });
		const timer = setTimeout(() => { sock.destroy(); reject(new Error('TLS connect timeout')); }, timeout * SLOW);
		sock.once('secureConnect', () => {
			clearTimeout(timer);
			const c = new RawConn(sock);
			c.peerCn = sock.getPeerCertificate().subject?.CN;
			resolve(c);
		});
		sock.once('error', (e) => { clearTimeout(timer); reject(e); });
	});
}

/* ---------- https backends ---------- */

/**
 * An https backend on 127.0.0.1 (node:https) that answers every request
 * with JSON {backend, method, url, headers, clientCn, authorized,
 * tlsVersion, alpn, servername}. opts: name, cert (a PKI leaf: its chain
 * and key), ca + requestCert + rejectUnauthorized for mutual TLS, t.
 * Records .requests and .tlsErrors (handshakes that failed on its side).
 */
export async function startHttpsBackend({ name = 'tls-backend', cert, requestCert = false, rejectUnauthorized = false, ca, t } = {}) {
	const b = { name, requests: [], tlsErrors: [], handshakes: 0, port: 0, address: '' };
	const sockets = new Set();
	const server = https.createServer({
		cert: fs.readFileSync(cert.chain),
		key: fs.readFileSync(cert.key),
		requestCert,
		rejectUnauthorized,
		...(ca ? { ca: fs.readFileSync(ca) } : {}),
		ALPNProtocols: ['http/1.1'],
	}, (req, res) => {
		const sock = req.socket;
		const peer = sock.getPeerCertificate ? sock.getPeerCertificate() : null;
		const rec = {
			backend: name,
			method: req.method,
			url: req.url,
			headers: req.headers,
			clientCn: peer && peer.subject ? peer.subject.CN : null,
			authorized: sock.authorized,
			tlsVersion: sock.getProtocol(),
			alpn: sock.alpnProtocol || null,
			servername: sock.servername || null,
			sessionReused: sock.isSessionReused(),
		};
		b.requests.push(rec);
		req.resume();
		req.on('end', () => {
			const body = Buffer.from(JSON.stringify(rec));
			res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length, 'X-Backend': name });
			res.end(body);
		});
	});
	server.on('secureConnection', (s) => {
		b.handshakes++;
		sockets.add(s);
		s.on('close', () => sockets.delete(s));
		s.on('error', () => {});
	});
	server.on('tlsClientError', (e) => b.tlsErrors.push(e.code || e.message));
	await new Promise((resolve, reject) => {
		server.once('error', reject);
		server.listen(0, '127.0.0.1', resolve);
	});
	b.server = server;
	b.port = server.address().port;
	b.address = `127.0.0.1:${b.port}`;
	b.close = async () => {
		server.closeAllConnections?.();
		for (const s of sockets) s.destroy();
		await new Promise((r) => server.close(() => r()));
	};
	if (t) t.after(() => b.close());
	return b;
}
