// `berth serve`: builds the config from environment and flags, then runs the daemon until a signal.

import { parseArgs } from 'node:util'
import { loadConfig, OPTIONS } from '../config.js'
import { createLogger } from '../log.js'
import { runDaemon } from '../http/server.js'
import type { Command } from './commands/common.js'

export function serveHelp(): string {
  const lines = OPTIONS.map((o) => `  --${o.flag.padEnd(24)} ${o.env.padEnd(30)} ${o.help}`)
  return `usage: berth serve [options]\n\nEach option can also be set by its environment variable (flags win):\n\n${lines.join('\n')}\n`
}

const FLAGS = { help: { type: 'boolean', short: 'h' }, ...Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: 'string' as const }])) } as const

export const command: Command = { help: serveHelp(), options: FLAGS, run: serveCommand }

async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false })
  if (values.help) {
    process.stdout.write(serveHelp())
    return 0
  }
  const config = loadConfig(process.env, values as Record<string, string | undefined>)
  const log = createLogger(config.logLevel)
  await runDaemon(config, log)
  return 0
}
