// What the commands that work on the data directory itself share (berth token, keys and import, which run
// beside the daemon rather than through its API): the --data-dir, --json and --help flags and `berth X SUB` parsing.

import { parseArgs } from 'node:util'
import type { Options } from './commands/common.js'

export const DATA_DIR_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
} as const

/**
 * Parses `berth X SUB ARGS...` with the command's own options. Without a sub-command the help is printed and
 * the answer is `{ exit: 2 }` (a script that forgot it fails); --help prints it and answers `{ exit: 0 }`.
 */
export function parseSubcommand<O extends Options & typeof DATA_DIR_OPTIONS>(argv: string[], options: O, help: string) {
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  const [sub, ...args] = positionals
  const asked = (values as { help?: boolean }).help === true
  if (asked || !sub) {
    process.stdout.write(help)
    return { exit: asked ? 0 : 2 } as const
  }
  return { values, sub, args, exit: null }
}
