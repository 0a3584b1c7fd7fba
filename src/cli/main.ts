// The `berth` command: dispatches to `serve` and `token ...`. Each command parses its own flags with
// node:util parseArgs and has --help; errors are one sentence on stderr and a non-zero exit code.

import { ConfigError } from '../config.js'
import { serveCommand } from './serve.js'
import { tokenCommand } from './token.js'
import { consoleCommand } from './console.js'
import { UsageError } from './usage.js'

const USAGE = `usage: berth <command> [options]

commands:
  serve                         run the daemon (see berth serve --help)
  token create --name N --scopes S1,S2 [--app APP]...
                                create a token; prints only the token
  token list [--json]           list tokens (never their secrets)
  token revoke NAME             revoke a token
  console APP [--attach]        remote IEx (or the node's own console) in this terminal

Every command takes --data-dir (or BERTH_DATA_DIR, default ./var) and --help.
`

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'serve':
        return await serveCommand(rest)
      case 'token':
        return await tokenCommand(rest)
      case 'console':
        return await consoleCommand(rest)
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE)
        return command === undefined ? 2 : 0
      default:
        throw new UsageError(`unknown command "${command}"; run berth --help`)
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`berth: ${(err as Error).message}\n`)
      return 2
    }
    throw err
  }
}
