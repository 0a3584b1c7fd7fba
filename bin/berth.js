#!/usr/bin/env node
// Entry point kept as plain JS so `npx berth` works right after `npm install` (the prepare script builds dist/).
import { main } from '../dist/src/cli/main.js'

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code },
  (err) => {
    process.stderr.write(`berth: ${err && err.message ? err.message : err}\n`)
    process.exitCode = 1
  }
)
