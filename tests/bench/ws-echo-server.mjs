// WebSocket echo backend of the `ws` benchmark section: one `ws` server on
// 127.0.0.1:PORT sending every message back as it came (same opcode). It
// prints "listening PORT" once ready. The `ws` package comes from
// SLUICE_NODE_MODULES (a directory holding node_modules) or else from
// tests/integration, as for the integration tests; nothing is installed here.
//
// usage: node ws-echo-server.mjs PORT

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const base = path.resolve(process.env.SLUICE_NODE_MODULES || path.join(BENCH_DIR, '..', 'integration'));

let WebSocketServer;
try {
	({ WebSocketServer } = createRequire(path.join(base, 'package.json'))('ws'));
} catch (e) {
	console.error(`ws-echo-server: cannot load npm package "ws" from ${path.join(base, 'node_modules')} ` +
		`(${e.code || e.message}); run "npm ci" in tests/integration or set SLUICE_NODE_MODULES`);
	process.exit(2);
}

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
	console.error('usage: node ws-echo-server.mjs PORT');
	process.exit(2);
}

const wss = new WebSocketServer({
	host: '127.0.0.1',
	port,
	backlog: 4096,
	// No compression and no client set: the echo path stays the cheapest
	// `ws` offers, so that the backend takes as little of the machine as it
	// can.
	perMessageDeflate: false,
	clientTracking: false,
	maxPayload: 1 << 20,
});

wss.on('connection', (ws) => {
	ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
	// A client vanishing is normal at the end of a run.
	ws.on('error', () => {});
});
wss.on('listening', () => console.log(`listening ${port}`));
wss.on('error', (e) => {
	console.error(`ws-echo-server: ${e.message}`);
	process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT'])
	process.on(sig, () => process.exit(0));
