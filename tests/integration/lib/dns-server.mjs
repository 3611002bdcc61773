// A small DNS server on loopback for the DNS discovery tests: answers A and
// AAAA questions (UDP, no compression in questions, one question a message)
// for the names it is given, with address lists the test changes at any
// time. Unknown names get NXDOMAIN; a known name without records of the
// type asked gets an empty answer. Modes make it fail (SERVFAIL) or stay
// silent. Records every question. Does not start sluice.

import dgram from 'node:dgram';
import net from 'node:net';

const TYPE_A = 1;
const TYPE_AAAA = 28;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

/** The question of a query: {name, type, end} (end: offset after QCLASS), or null. */
function parseQuestion(msg) {
	if (msg.length < 12 || msg.readUInt16BE(4) < 1) return null;
	const labels = [];
	let off = 12;
	for (;;) {
		if (off >= msg.length) return null;
		const len = msg[off++];
		if (len === 0) break;
		if (len > 63 || off + len > msg.length) return null;
		labels.push(msg.toString('latin1', off, off + len));
		off += len;
	}
	if (off + 4 > msg.length) return null;
	return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(off), end: off + 4 };
}

function ipBytes(ip) {
	if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
	// Expand "::" and write eight 16-bit groups.
	const [head, tail = ''] = ip.split('::');
	const h = head ? head.split(':') : [];
	const t = tail ? tail.split(':') : [];
	const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
	const b = Buffer.alloc(16);
	groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
	return b;
}

function response(query, q, rcode, ips, type) {
	const header = Buffer.alloc(12);
	header.writeUInt16BE(query.readUInt16BE(0), 0);
	// QR, the query's opcode and RD, AA and RA, and the rcode.
	const flags = 0x8000 | (query.readUInt16BE(2) & 0x7900) | 0x0400 | 0x0080 | rcode;
	header.writeUInt16BE(flags, 2);
	header.writeUInt16BE(1, 4);
	header.writeUInt16BE(ips.length, 6);
	const answers = ips.map((ip) => {
		const rdata = ipBytes(ip);
		const rr = Buffer.alloc(12);
		rr.writeUInt16BE(0xc00c, 0); // the name, pointing at the question's
		rr.writeUInt16BE(type, 2);
		rr.writeUInt16BE(1, 4); // IN
		rr.writeUInt32BE(5, 6); // TTL
		rr.writeUInt16BE(rdata.length, 10);
		return Buffer.concat([rr, rdata]);
	});
	// The question goes back byte for byte: evdns checks the name's case
	// (it randomises it against spoofing).
	return Buffer.concat([header, query.subarray(12, q.end), ...answers]);
}

/**
 * Start the server on 127.0.0.1 (a free port). Returns
 *   port, address ("127.0.0.1:PORT", for `resolvers`)
 *   set(name, a = [], aaaa = [])  what name resolves to from now on
 *   remove(name)                  NXDOMAIN from now on
 *   mode                          'answer' (default), 'servfail' or 'drop' (no reply)
 *   questions                     [{name, type: 'A' | 'AAAA' | number, time}]
 *   asked(name, type)             how many questions for name (of type, if given)
 *   waitAsked(n, name, timeout)   until n more questions for name than now arrived
 *   close()                       stop answering: the port is closed
 * Closed by t's teardown when t is given.
 */
export async function startDnsServer({ t } = {}) {
	const sock = dgram.createSocket('udp4');
	const records = new Map();
	const d = {
		port: 0,
		address: '',
		mode: 'answer',
		questions: [],
		closed: false,
		set(name, a = [], aaaa = []) {
			records.set(name.toLowerCase(), { a: [...a], aaaa: [...aaaa] });
		},
		remove(name) {
			records.delete(name.toLowerCase());
		},
		asked(name, type) {
			return d.questions.filter((q) => q.name === name.toLowerCase() && (!type || q.type === type)).length;
		},
		async waitAsked(n, name, timeout = 5000) {
			const want = d.asked(name) + n;
			const end = Date.now() + timeout;
			while (d.asked(name) < want) {
				if (Date.now() > end) throw new Error(`DNS server: no ${n} questions for ${name} within ${timeout} ms`);
				await new Promise((r) => setTimeout(r, 20));
			}
		},
		close() {
			if (d.closed) return Promise.resolve();
			d.closed = true;
			return new Promise((r) => sock.close(r));
		},
	};
	sock.on('message', (msg, rinfo) => {
		const q = parseQuestion(msg);
		if (!q) return;
		const typeName = q.type === TYPE_A ? 'A' : q.type === TYPE_AAAA ? 'AAAA' : q.type;
		d.questions.push({ name: q.name, type: typeName, time: Date.now() });
		if (d.mode === 'drop') return;
		let out;
		const rec = records.get(q.name);
		if (d.mode === 'servfail') out = response(msg, q, RCODE_SERVFAIL, [], q.type);
		else if (!rec) out = response(msg, q, RCODE_NXDOMAIN, [], q.type);
		else if (q.type === TYPE_A) out = response(msg, q, 0, rec.a, TYPE_A);
		else if (q.type === TYPE_AAAA) out = response(msg, q, 0, rec.aaaa, TYPE_AAAA);
		else out = response(msg, q, 0, [], q.type);
		sock.send(out, rinfo.port, rinfo.address);
	});
	await new Promise((resolve, reject) => {
		sock.once('error', reject);
		sock.bind(0, '127.0.0.1', resolve);
	});
	sock.on('error', () => {});
	d.port = sock.address().port;
	d.address = `127.0.0.1:${d.port}`;
	if (t) t.after(() => d.close());
	return d;
}
