// Socket.io peers for the sticky-session tests: real Socket.io 4 servers
// as child processes (lib/sio-server.mjs) that report what reaches them,
// and socket.io-client runs that connect, wait for the websocket upgrade,
// exchange acknowledged messages and report every problem they saw. Does
// not start sluice (see sluice.mjs).

import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dep } from './deps.mjs';
import { SLOW, sleep, trackProcess } from './sluice.mjs';

const SERVER_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'sio-server.mjs');

/**
 * Start one Socket.io echo server per name as a child process. Each is
 * {name, port, address, proc, events (everything it reported), kill(sig),
 * alive}. All are killed in t.after(). Fails when the socket.io package
 * cannot be loaded.
 */
export async function startSioServers(names, { t } = {}) {
	const servers = await Promise.all(names.map((name) => startOne(name)));
	if (t) t.after(() => Promise.all(servers.map((s) => s.kill('SIGKILL'))));
	return servers;
}

function startOne(name) {
	return new Promise((resolve, reject) => {
		const proc = trackProcess(fork(SERVER_SCRIPT, [name], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }));
		let stderr = '';
		proc.stderr.setEncoding('utf8');
		proc.stderr.on('data', (d) => { stderr += d; });
		proc.stdout.resume();
		const exited = new Promise((r) => proc.once('exit', r));
		const s = {
			name,
			proc,
			port: 0,
			address: '',
			events: [],
			alive: true,
			async kill(sig = 'SIGKILL') {
				if (proc.exitCode === null && proc.signalCode === null) {
					try { process.kill(proc.pid, sig); } catch { /* gone */ }
				}
				await exited;
				s.alive = false;
			},
		};
		const timer = setTimeout(() => {
			s.kill();
			reject(new Error(`Socket.io server ${name} did not start within ${10000 * SLOW} ms; stderr:\n${stderr}`));
		}, 10000 * SLOW);
		proc.on('message', (m) => {
			if (m.type === 'listening') {
				clearTimeout(timer);
				s.port = m.port;
				s.address = `127.0.0.1:${m.port}`;
				resolve(s);
			} else if (m.type === 'fatal') {
				clearTimeout(timer);
				reject(new Error(`Socket.io server ${name}: ${m.message}`));
			} else {
				s.events.push(m);
			}
		});
		proc.once('exit', (code, sig) => {
			s.alive = false;
			clearTimeout(timer);
			reject(new Error(`Socket.io server ${name} exited (${code ?? sig}) before listening; stderr:\n${stderr}`));
		});
	});
}

function describeError(e) {
	if (!e) return String(e);
	const parts = [e.message || String(e)];
	if (e.description !== undefined) {
		const d = e.description;
		parts.push(typeof d === 'object' ? (d.message || d.code || JSON.stringify(d)) : String(d));
	}
	if (e.context && e.context.responseText) parts.push(String(e.context.responseText));
	if (e.context && e.context.status) parts.push(`status ${e.context.status}`);
	return parts.join(': ');
}

/**
 * One socket.io-client session through url: connect, wait until the
 * Engine.IO transport is upgraded to websocket, send `messages`
 * acknowledged messages and check their echo, disconnect. Resolves a
 * record {i, ok, upgraded, transport, sid, server, echoes, problems[]};
 * never rejects, never waits longer than timeout ms.
 * opts: cookies (socket.io-client keeps cookies: withCredentials, which
 * gives Node clients a cookie jar since socket.io-client 4.7), clientOpts
 * (more io() options, e.g. transports), keepOpen (a session that went
 * well stays connected: r.socket, for the caller to disconnect).
 */
export function sioSession(url, i, { messages = 20, cookies = false, timeout = 15000, keepOpen = false, clientOpts = {} } = {}) {
	const { io } = dep('socket.io-client');
	return new Promise((resolve) => {
		const r = { i, ok: false, upgraded: false, transport: null, sid: null, server: null, servers: [], echoes: 0, problems: [] };
		const socket = io(url, {
			forceNew: true,
			reconnection: false,
			timeout: 10000,
			withCredentials: cookies,
			...clientOpts,
		});
		const engine = socket.io.engine;
		let finished = false;
		const finish = () => {
			if (finished) return;
			finished = true;
			clearTimeout(timer);
			if (keepOpen && r.ok) r.socket = socket;
			else socket.disconnect();
			resolve(r);
		};
		const timer = setTimeout(() => {
			r.problems.push(`timeout after ${timeout * SLOW} ms (connected ${socket.connected}, transport ${engine.transport && engine.transport.name}, echoes ${r.echoes})`);
			finish();
		}, timeout * SLOW);
		socket.on('connect_error', (e) => { r.problems.push(`connect_error: ${describeError(e)}`); finish(); });
		socket.on('disconnect', (reason, details) => {
			if (!r.ok && !finished) {
				r.problems.push(`disconnect: ${reason}${details ? `: ${describeError(details)}` : ''}`);
				finish();
			}
		});
		engine.on('upgradeError', (e) => r.problems.push(`upgradeError: ${describeError(e)}`));
		engine.on('error', (e) => r.problems.push(`engine error: ${describeError(e)}`));
		const directWs = engine.transport && engine.transport.name === 'websocket';
		const upgraded = directWs ? Promise.resolve() : new Promise((res) => engine.once('upgrade', res));
		const connected = new Promise((res) => socket.once('connect', res));
		Promise.all([connected, upgraded]).then(async () => {
			r.upgraded = true;
			r.transport = engine.transport.name;
			r.sid = engine.id;
			if (r.transport !== 'websocket') r.problems.push(`transport after upgrade: ${r.transport}`);
			for (let k = 0; k < messages && !finished; k++) {
				const payload = { client: i, k, text: `message ${k} of client ${i}`, bytes: 'x'.repeat(k * 10) };
				let reply;
				try {
					reply = await socket.timeout(5000 * SLOW).emitWithAck('msg', payload);
				} catch (e) {
					r.problems.push(`message ${k}: ${describeError(e)}`);
					break;
				}
				if (!reply || JSON.stringify(reply.data) !== JSON.stringify(payload)) {
					r.problems.push(`message ${k}: wrong echo ${JSON.stringify(reply)}`);
					break;
				}
				r.echoes++;
				if (!r.servers.includes(reply.server)) r.servers.push(reply.server);
			}
			r.server = r.servers[0] || null;
			if (r.servers.length > 1) r.problems.push(`echoes from several servers: ${r.servers}`);
			r.ok = r.echoes === messages && r.problems.length === 0 && engine.transport.name === 'websocket';
			finish();
		}).catch((e) => { r.problems.push(String(e)); finish(); });
	});
}

/**
 * Run n sessions (started a few at a time over ~stagger ms) and resolve
 * their records.
 */
export async function sioSessions(url, n, opts = {}) {
	const { stagger = 300 } = opts;
	const all = [];
	for (let i = 0; i < n; i++) {
		all.push(sioSession(url, i, opts));
		if (i % 20 === 19) await sleep(Math.round((stagger * 20) / n));
	}
	return Promise.all(all);
}

/**
 * A socket.io-client that reconnects (for failover tests): resolves the
 * socket once connected and upgraded. opts as for sioSession.
 */
export function sioReconnectingClient(url, { cookies = false, timeout = 10000, clientOpts = {} } = {}) {
	const { io } = dep('socket.io-client');
	const socket = io(url, {
		forceNew: true,
		reconnection: true,
		reconnectionDelay: 100,
		reconnectionDelayMax: 500,
		randomizationFactor: 0,
		timeout: 5000,
		withCredentials: cookies,
		...clientOpts,
	});
	socket.connects = 0;
	socket.disconnects = [];
	socket.on('connect', () => { socket.connects++; });
	socket.on('disconnect', (reason) => socket.disconnects.push({ reason, at: Date.now() }));
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => { socket.disconnect(); reject(new Error(`client did not connect and upgrade within ${timeout * SLOW} ms`)); }, timeout * SLOW);
		socket.once('connect', () => {
			const done = () => { clearTimeout(timer); resolve(socket); };
			if (socket.io.engine.transport.name === 'websocket') done();
			else socket.io.engine.once('upgrade', done);
		});
	});
}
