// Starts and stops a real redis-server for the rate limit tests: on a free
// loopback port, without persistence, tracked by PID (killed by PID when the
// test process exits); and a minimal RESP client to set it up and read it.
// It does not start sluice (see sluice.mjs).

import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { freePort, sleep, trackProcess } from './sluice.mjs';

/** Whether a redis-server binary is on PATH (tests skip without it). */
export function haveRedis() {
	return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

function encode(args) {
	let out = `*${args.length}\r\n`;
	for (const a of args) {
		const b = Buffer.from(String(a));
		out += `$${b.length}\r\n${b.toString('latin1')}\r\n`;
	}
	return Buffer.from(out, 'latin1');
}

/** Parse one RESP value at buf[pos]; returns [value, next] or null when incomplete. */
function parse(buf, pos) {
	const eol = buf.indexOf('\r\n', pos);
	if (eol < 0) return null;
	const type = String.fromCharCode(buf[pos]);
	const line = buf.toString('latin1', pos + 1, eol);
	const next = eol + 2;
	switch (type) {
	case '+': return [line, next];
	case '-': return [new Error(line), next];
	case ':': return [Number(line), next];
	case '$': {
		const n = Number(line);
		if (n < 0) return [null, next];
		if (buf.length < next + n + 2) return null;
		return [buf.toString('utf8', next, next + n), next + n + 2];
	}
	case '*': {
		const n = Number(line);
		if (n < 0) return [null, next];
		const arr = [];
		let p = next;
		for (let i = 0; i < n; i++) {
			const r = parse(buf, p);
			if (!r) return null;
			arr.push(r[0]);
			p = r[1];
		}
		return [arr, p];
	}
	default: throw new Error(`bad RESP type ${type}`);
	}
}

/**
 * One command on a fresh connection: resolves with the reply (an Error
 * object for an error reply). opts: auth [user, pass] or [pass], timeout ms.
 */
export function redisCommand(port, args, { auth, timeout = 5000 } = {}) {
	return new Promise((resolve, reject) => {
		const s = net.connect({ host: '127.0.0.1', port });
		let buf = Buffer.alloc(0);
		let want = auth ? 2 : 1;
		const replies = [];
		const timer = setTimeout(() => { s.destroy(); reject(new Error(`redis ${args[0]}: timeout`)); }, timeout);
		s.on('connect', () => {
			if (auth) s.write(encode(['AUTH', ...auth]));
			s.write(encode(args));
		});
		s.on('data', (d) => {
			buf = Buffer.concat([buf, d]);
			let r;
			while (want > 0 && (r = parse(buf, 0))) {
				replies.push(r[0]);
				buf = buf.subarray(r[1]);
				want--;
			}
			if (want === 0) {
				clearTimeout(timer);
				s.destroy();
				resolve(replies[replies.length - 1]);
			}
		});
		s.on('error', (e) => { clearTimeout(timer); reject(e); });
	});
}

/**
 * Start redis-server. opts: port (default: a free one), args (extra CLI
 * arguments), t (node:test context: stopped in t.after). Resolves once it
 * answers PING. The returned object can stop() and start() it again on the
 * same port, and send cmd(...args).
 */
export async function startRedis(opts = {}) {
	const port = opts.port || (await freePort());
	const r = {
		port,
		address: `127.0.0.1:${port}`,
		proc: null,
		log: '',
		auth: opts.auth,
		cmd: (...args) => redisCommand(port, args, { auth: r.auth }),
		async start() {
			const argv = ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
				'--appendonly', 'no', '--enable-debug-command', 'local', ...(opts.args || [])];
			const proc = trackProcess(spawn('redis-server', argv, { stdio: ['ignore', 'pipe', 'pipe'] }));
			r.proc = proc;
			proc.stdout.setEncoding('utf8');
			proc.stderr.setEncoding('utf8');
			proc.stdout.on('data', (d) => { r.log += d; });
			proc.stderr.on('data', (d) => { r.log += d; });
			const deadline = Date.now() + 5000;
			for (;;) {
				if (proc.exitCode !== null) throw new Error(`redis-server exited: ${r.log}`);
				try {
					const pong = await redisCommand(port, ['PING'], { timeout: 500 });
					if (pong === 'PONG' || pong instanceof Error) return r;
				} catch { /* not listening yet */ }
				if (Date.now() > deadline) throw new Error(`redis-server did not start: ${r.log}`);
				await sleep(20);
			}
		},
		/** Kill it by PID (SIGKILL: as if the machine went away) and wait for the exit. */
		async stop(signal = 'SIGKILL') {
			const proc = r.proc;
			if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
			const gone = new Promise((res) => proc.once('exit', res));
			proc.kill(signal);
			await Promise.race([gone, sleep(5000)]);
		},
	};
	await r.start();
	if (opts.t) opts.t.after(() => r.stop());
	return r;
}
