#!/usr/bin/env -S node --max-semi-space-size=1
// Entry point kept as plain JS so `npx berth` works right after `npm install` (the prepare script builds dist/).
// The line above holds the node flags berth runs with (`npx berth`, `npm start`; systemd/berth.service repeats
// them and test/systemd.test.ts holds the two together): a 1 MiB young generation instead of Node's 16 MiB
// keeps the daemon ~6 MiB smaller idle and ~40 MiB under load, for ~10 % more CPU per API request (bench/README.md).
import { main } from '../dist/bundle/main.js'

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code },
  (err) => {
    process.stderr.write(`berth: ${err && err.message ? err.message : err}\n`)
    process.exitCode = 1
  }
)
