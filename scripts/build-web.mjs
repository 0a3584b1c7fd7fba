#!/usr/bin/env node
// Builds the browser code: type-checks src/web with its own tsconfig (DOM types, no node globals), so a type
// error fails the build, then bundles each page's entry with esbuild into dist/web/, which /assets serves.
//
// scripts/bundle.mjs runs this after the daemon's bundle, so `npm run build`, `npm run prepare` and
// scripts/test.mjs (npm test) all produce the pages. xterm.js and its fit addon stay out of the bundles: the
// pages load them as scripts of their own from node_modules (src/web/xterm.ts types them).

import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** The pages' entry modules, each bundled into dist/web/NAME.js. */
export const PAGES = ['dashboard', 'console']

const tsc = spawnSync(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(REPO, 'src', 'web', 'tsconfig.json')], { stdio: 'inherit', cwd: REPO })
if (tsc.status !== 0) {
  console.error('build-web: the browser code (src/web) does not type-check')
  process.exit(tsc.status || 1)
}

fs.rmSync(path.join(REPO, 'dist', 'web'), { recursive: true, force: true })
await build({
  absWorkingDir: REPO,
  entryPoints: Object.fromEntries(PAGES.map((p) => [p, `src/web/${p}.ts`])),
  outdir: 'dist/web',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // What the pages already relied on (dialog, replaceChildren, CSS.escape, TextDecoderStream).
  target: ['es2022'],
  legalComments: 'none',
  logLevel: 'warning',
})
