#!/usr/bin/env node
// Bundles the compiled CLI and daemon (dist/src/cli/main.js and everything it imports) into dist/bundle/, which
// bin/berth.js runs: one module graph in a few files instead of ~400 modules to resolve, read and link at start.
//
// Code split at berth's own dynamic imports (each CLI command, the daemon, /docs), so `serve` loads what serving
// needs and a CLI command what it needs. Left out of the bundle, loaded from node_modules as before:
//   - native addons (better-sqlite3, node-pty);
//   - packages that find their own files at run time: pino (worker-thread transports), swagger and swagger-ui
//     (their static assets), and those berth loads through createRequire on first use (yaml, pino-pretty, the
//     schema compilers resolved from fastify's own package);
//   - prom-client, loaded after listen.
// Whitespace and syntax are minified, identifiers are not: stack traces still name berth's functions (esbuild's
// keepNames, which would also keep `.name` where it renames a clashing top-level name, cost ~50 ms of start).

import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const EXTERNAL = ['better-sqlite3', 'node-pty', 'pino', 'pino-pretty', 'thread-stream', '@fastify/swagger', '@fastify/swagger-ui', 'yaml', 'prom-client']

// Chunk names change with their content: old ones would pile up.
fs.rmSync(path.join(REPO, 'dist', 'bundle'), { recursive: true, force: true })

await build({
  absWorkingDir: REPO,
  entryPoints: { main: 'dist/src/cli/main.js' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunk-[hash]',
  external: EXTERNAL,
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  // The bundled CommonJS packages (fastify, tar, ws, ...) call require() for node's own modules and for the
  // packages above; an ES module has none of its own.
  banner: { js: "import { createRequire as __berthRequire } from 'node:module'; const require = __berthRequire(import.meta.url);" },
})

// The browser pages the daemon serves (dist/web), built with it so that no build makes one without the other.
await import('./build-web.mjs')
