#!/usr/bin/env node
// contrib/demo/chat/server.js: one instance of the sluice demo chat. Serves
// index.html at / (stamped with this instance's name, port and version),
// /health, and the chat over Socket.io 4 with default transports and no
// adapter: a message reaches only the clients connected to this instance.
//
// usage: node server.js NAME PORT VERSION [HOST]
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { Server } = require('socket.io');

const [name, portArg, version, host = '127.0.0.1'] = process.argv.slice(2);
const port = Number(portArg);
if (!name || !version || !Number.isInteger(port) || port < 1 || port > 65535) {
	console.error('usage: node server.js NAME PORT VERSION [HOST]');
	process.exit(2);
}

const MAX_NICK = 32;
const MAX_TEXT = 500;

const me = { name, port, version, pid: process.pid };

// Read once: the page is small and a running demo should not change under
// its users. The placeholder sits in a <script>, so "<" is escaped to keep
// a NAME or VERSION from closing the script element.
const template = fs.readFileSync(path.join(__dirname, 'index.html'), 'utf8');
const PLACEHOLDER = '/*PAGE_SERVER*/null';
if (!template.includes(PLACEHOLDER)) {
	console.error(`chat ${name}: index.html has no ${PLACEHOLDER} placeholder`);
	process.exit(1);
}
const pageBody = template.replace(PLACEHOLDER,
	JSON.stringify(me).replace(/</g, '\\u003c'));

function log(msg) {
	console.error(`${new Date().toISOString()} chat ${name} (${version}): ${msg}`);
}

function send(req, res, status, type, body) {
	res.writeHead(status, {
		'Content-Type': type,
		'Content-Length': Buffer.byteLength(body),
		// Every reload must reach the proxy to show which server answers.
		'Cache-Control': 'no-store',
		'X-Server': name,
		'X-Server-Version': version,
	});
	res.end(req.method === 'HEAD' ? undefined : body);
}

// Socket.io answers its own path (/socket.io/, including the client script
// at /socket.io/socket.io.js) before this handler sees the request.
const httpServer = http.createServer((req, res) => {
	const pathname = req.url.split('?')[0];
	if (req.method !== 'GET' && req.method !== 'HEAD') {
		send(req, res, 405, 'text/plain', '405 Method Not Allowed\n');
	} else if (pathname === '/' || pathname === '/index.html') {
		send(req, res, 200, 'text/html; charset=utf-8', pageBody);
	} else if (pathname === '/health') {
		send(req, res, 200, 'text/plain', 'ok\n');
	} else {
		send(req, res, 404, 'text/plain', '404 Not Found\n');
	}
});

const io = new Server(httpServer);
let nextId = 1;

function peerOf(socket) {
	const xff = socket.handshake.headers['x-forwarded-for'];
	return xff ? `${socket.handshake.address} for ${xff}` : socket.handshake.address;
}

function clientsChanged() {
	io.emit('clients', io.engine.clientsCount);
}

io.on('connection', (socket) => {
	const sid = socket.conn.id;
	log(`connect sid=${sid} transport=${socket.conn.transport.name} peer=${peerOf(socket)}`);
	socket.conn.on('upgrade', (transport) => {
		log(`upgrade sid=${sid} transport=${transport.name}`);
	});

	socket.emit('hello', { ...me, clients: io.engine.clientsCount });
	clientsChanged();

	socket.on('chat', (msg, ack) => {
		const reply = typeof ack === 'function' ? ack : () => {};
		if (!msg || typeof msg.text !== 'string') {
			reply({ error: 'text must be a string' });
			return;
		}
		const text = msg.text.trim().slice(0, MAX_TEXT);
		const nick = (typeof msg.nick === 'string' ? msg.nick.trim() : '')
			.slice(0, MAX_NICK) || 'anonymous';
		if (!text) {
			reply({ error: 'empty message' });
			return;
		}
		const out = { id: nextId++, nick, text, server: name, version, time: Date.now() };
		// No adapter: this reaches the clients of this instance only.
		io.emit('chat', out);
		reply({ id: out.id });
	});

	socket.on('disconnect', (reason) => {
		log(`disconnect sid=${sid} reason=${reason}`);
		clientsChanged();
	});
});

httpServer.on('error', (err) => {
	console.error(`chat ${name}: ${err.message}`);
	process.exit(1);
});

httpServer.listen(port, host, () => {
	log(`listening on ${host}:${port}`);
});

function stop() {
	// Closes every Socket.io client, then the HTTP server.
	io.close(() => process.exit(0));
	httpServer.closeAllConnections();
	// Do not let a slow client hold the demo open.
	setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
