// One real Socket.io 4 server (npm socket.io, default transports, no
// adapter) run as a child process by lib/sio.mjs: an echo server that tags
// its replies with its name. Reports to the parent over IPC: its port,
// every HTTP request and upgrade it receives, sessions and Engine.IO
// connection errors. Usage: node sio-server.mjs NAME (forked with IPC).

import http from 'node:http';
import { dep } from './deps.mjs';

const name = process.argv[2] || 'sio';
const report = (m) => {
	if (process.connected) process.send(m);
};

let Server;
try {
	({ Server } = dep('socket.io'));
} catch (e) {
	report({ type: 'fatal', message: e.message });
	process.exit(1);
}

const httpServer = http.createServer((req, res) => {
	// Only paths outside /socket.io/ get here (engine.io takes the rest).
	if (req.url.startsWith('/whoami')) {
		res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(name) + 1 });
		res.end(`${name}\n`);
		return;
	}
	res.writeHead(404, { 'Content-Length': 0 });
	res.end();
});
const io = new Server(httpServer);

function record(req, upgrade) {
	const u = new URL(req.url, 'http://x');
	report({
		type: 'req',
		server: name,
		method: req.method,
		url: req.url,
		sid: u.searchParams.get('sid'),
		transport: u.searchParams.get('transport'),
		cookie: req.headers.cookie ?? null,
		upgrade,
	});
}
// engine.io replaced the 'request' listeners when it attached: go first.
httpServer.prependListener('request', (req) => record(req, false));
httpServer.prependListener('upgrade', (req) => record(req, true));

io.engine.on('connection_error', (err) => {
	report({ type: 'connection_error', server: name, code: err.code, message: err.message, url: err.req && err.req.url });
});

io.on('connection', (socket) => {
	report({ type: 'connection', server: name, sid: socket.conn.id, transport: socket.conn.transport.name });
	socket.conn.on('upgrade', (tr) => report({ type: 'upgrade', server: name, sid: socket.conn.id, transport: tr.name }));
	socket.on('msg', (data, ack) => {
		if (typeof ack === 'function') ack({ server: name, data });
	});
	socket.on('whoami', (ack) => {
		if (typeof ack === 'function') ack({ server: name, sid: socket.conn.id, transport: socket.conn.transport.name });
	});
});

httpServer.listen(0, '127.0.0.1', () => {
	report({ type: 'listening', server: name, port: httpServer.address().port });
});

// The parent went away: do not linger.
process.on('disconnect', () => process.exit(0));
