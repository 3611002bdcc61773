// Loads the npm packages some tests use as real peers (ws, socket.io,
// socket.io-client) from SLUICE_NODE_MODULES (a directory holding
// node_modules; run.sh sets it, e.g. to a build-tree copy when the source
// tree is read-only) or else from tests/integration. Installs nothing.

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TEST_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const DEPS_BASE = path.resolve(process.env.SLUICE_NODE_MODULES || TEST_DIR);

// createRequire wants a file name; resolution starts in its directory.
const requireFromBase = createRequire(path.join(DEPS_BASE, 'package.json'));

/**
 * require() one of the packages in tests/integration/package.json. Throws
 * an error that says how to install them: a test file that needs them
 * fails (never skips) when they are missing.
 */
export function dep(name) {
	try {
		return requireFromBase(name);
	} catch (e) {
		const err = new Error(`cannot load npm package "${name}" from ${path.join(DEPS_BASE, 'node_modules')} (${e.code || e.message}); ` +
			'run "npm ci" in tests/integration, or set SLUICE_NODE_MODULES to a directory whose node_modules has the ' +
			'packages of tests/integration/package.json (run.sh does this under make check)');
		err.cause = e;
		throw err;
	}
}
