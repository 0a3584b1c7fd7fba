#!/usr/bin/env -S node --max-semi-space-size=1
// Entry point kept as plain JS: it runs the build in dist/bundle/ (`npm ci` and `npm run build` make it).
// The line above holds the node flags berth runs with (`npm start`, `./bin/berth.js`; systemd/berth.service repeats
// them and test/systemd.test.ts holds the two together): a 1 MiB young generation instead of Node's 16 MiB
// keeps the daemon ~6 MiB smaller idle and ~40 MiB under load, for ~10 % more CPU per API request (bench/README.md).
// It never builds by itself: a missing build is an error and a stale one a warning, each saying what to run,
// so that nobody waits on a silent rebuild or runs code older than the source without knowing.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '')
const bundle = path.join(root, 'dist', 'bundle', 'main.js')
const built = fs.statSync(bundle, { throwIfNoEntry: false })
if (!built) {
  process.stderr.write(`berth: the build is missing (${bundle} does not exist): run \`npm run build\` in ${root} (\`npm ci\` runs it too)\n`)
  process.exit(1)
}
const stale = newerSource(path.join(root, 'src'), built.mtimeMs)
if (stale) {
  process.stderr.write(`berth: warning: the build in dist/ is older than ${path.relative(root, stale)}: this runs the code as last built; run \`npm run build\` in ${root} to run the source as it is\n`)
}

const { main } = await import(pathToFileURL(bundle).href)
main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code },
  (err) => {
    process.stderr.write(`berth: ${err && err.message ? err.message : err}\n`)
    process.exitCode = 1
  }
)

/** A TypeScript source changed after the build, if any (an installed copy without src/ has none). ~1 ms. */
function newerSource(dir, than) {
  let files
  try {
    files = fs.readdirSync(dir, { recursive: true })
  } catch {
    return null
  }
  for (const f of files) {
    if (!f.endsWith('.ts')) continue
    const file = path.join(dir, f)
    if ((fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0) > than) return file
  }
  return null
}
