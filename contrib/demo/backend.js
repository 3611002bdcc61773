#!/usr/bin/env node
// contrib/demo/backend.js: a demo backend for trying sluice by hand. Every
// request gets a small HTML page telling which server answered it and what
// the proxy passed on; /health answers "ok". Plain Node, no dependencies.
//
// usage: node backend.js NAME PORT [HOST]
'use strict';

const http = require('node:http');

const [name, portArg, host = '127.0.0.1'] = process.argv.slice(2);
const port = Number(portArg);
if (!name || !Number.isInteger(port) || port < 1 || port > 65535) {
	console.error('usage: node backend.js NAME PORT [HOST]');
	process.exit(2);
}

let served = 0;

function escapeHtml(s) {
	return String(s).replace(/[&<>"']/g, (c) => ({
		'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
	})[c]);
}

function page(req, bodyBytes) {
	const h = req.headers;
	const rows = [
		['server', name],
		['port', port],
		['requests served', served],
		['method', req.method],
		['path', req.url],
		['Host', h.host ?? '(none)'],
		['X-Forwarded-For', h['x-forwarded-for'] ?? '(none)'],
		['X-Forwarded-Proto', h['x-forwarded-proto'] ?? '(none)'],
		['X-Forwarded-Host', h['x-forwarded-host'] ?? '(none)'],
		['X-Request-ID', h['x-request-id'] ?? '(none)'],
		['request body', `${bodyBytes} bytes`],
		['peer', `${req.socket.remoteAddress}:${req.socket.remotePort}`],
	];
	const tr = rows.map(([k, v]) =>
		`<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('\n');
	return `<!doctype html>
<html><head><meta charset="utf-8"><title>sluice demo: ${escapeHtml(name)}</title>
<style>
body { font-family: sans-serif; margin: 2em; }
h1 { color: #246; }
th { text-align: left; padding-right: 1em; }
td { font-family: monospace; }
</style></head>
<body>
<h1>Answered by server ${escapeHtml(name)} (port ${port})</h1>
<p>Reload the page: sluice balances requests over the demo servers.</p>
<table>
${tr}
</table>
</body></html>
`;
}

const server = http.createServer((req, res) => {
	let bodyBytes = 0;
	req.on('data', (chunk) => { bodyBytes += chunk.length; });
	req.on('end', () => {
		served++;
		if (req.url === '/health') {
			res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Server': name });
			res.end('ok\n');
			return;
		}
		const body = page(req, bodyBytes);
		res.writeHead(200, {
			'Content-Type': 'text/html; charset=utf-8',
			'Content-Length': Buffer.byteLength(body),
			'X-Server': name,
		});
		res.end(req.method === 'HEAD' ? undefined : body);
	});
});

server.on('error', (err) => {
	console.error(`backend ${name}: ${err.message}`);
	process.exit(1);
});

server.listen(port, host, () => {
	console.error(`backend ${name} listening on ${host}:${port}`);
});

function stop() {
	server.close(() => process.exit(0));
	server.closeAllConnections();
	// Do not let a slow client hold the demo open.
	setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
