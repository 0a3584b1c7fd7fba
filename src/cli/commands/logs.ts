// `berth logs APP [-f] [--json]`: the node's console output (or berth's lines about the app), copied to stdout
// as it streams, with backpressure so a slow pipe (| less) slows the download instead of growing memory.

import { safeLines } from '../safe-text.js'
import { pipeline } from 'node:stream/promises'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, helped, SERVER_HELP } from './common.js'
import { parseArgs } from 'node:util'

const HELP = `usage: berth logs APP [-f] [--lines N] [--source console|berth|access] [--json | --raw]

Prints the last N lines (default 100, at most 10000) of APP's logs; -f (--follow) keeps printing new lines,
across node restarts, until Ctrl+C. --source console (default) is the node's own console output;
--source berth is what berth logged about the app (deployments, restarts, health checks); --source access
is the shared edge's access log for the app's hostnames, one JSON object per request.

The output is the app's own lines, without the console's prompts (iex(app@host)1>), carriage returns,
colours or run_erl's ===== markers. --json prints one JSON object per line instead (at, source, app, line,
clock: newline-delimited JSON for Vector, Loki or journald; "clock" says how precise "at" is, see
openapi.yaml). --raw prints the log files' bytes as the node's console wrote them, escape sequences included;
without it every line is printed as a terminal would show it, with no escape sequence left.

${SERVER_HELP}
`

export async function logsCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...COMMON_OPTIONS, follow: { type: 'boolean', short: 'f' }, lines: { type: 'string', short: 'n' }, source: { type: 'string' }, raw: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  })
  if (helped(values, HELP)) return 0
  const app = appArg(positionals[0], 'berth logs APP')
  if (positionals.length > 1) throw new UsageError(`logs takes one app, got ${positionals.join(' ')}`)
  const query = new URLSearchParams()
  if (values.lines !== undefined) {
    if (!/^\d+$/.test(values.lines) || Number(values.lines) > 10_000) throw new UsageError(`--lines must be a whole number from 0 to 10000, not "${values.lines}"`)
    query.set('lines', values.lines)
  }
  if (values.source !== undefined) {
    if (!['console', 'berth', 'access'].includes(values.source)) throw new UsageError(`--source is console, berth or access, not "${values.source}"`)
    query.set('source', values.source)
  }
  if (values.json && values.raw) throw new UsageError('--json and --raw are two different outputs: pick one')
  if (values.json) query.set('format', 'json')
  if (values.raw) query.set('format', 'raw')
  if (values.follow) query.set('follow', 'true')
  const res = await client(values, env).stream(appPath(app, `/logs${query.size ? `?${query}` : ''}`))
  try {
    // --raw asks for the bytes as the node wrote them; text and JSON lines are printed safe for a terminal.
    if (values.raw) await pipeline(res, process.stdout)
    else await pipeline(res, safeLines(), process.stdout)
  } catch (err) {
    // The reader went away (| head): that ends the command, it is not an error.
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return 0
    process.stderr.write('berth: the connection to berth broke while reading the logs\n')
    return 1
  }
  if (values.follow) {
    // berth ends a followed stream only when it shuts down; a script watching it should know.
    process.stderr.write('berth: berth ended the log stream (it is stopping or restarting)\n')
    return 1
  }
  return 0
}
