// `berth rpc APP EXPR`: evaluates an expression on the running node (bin/APP rpc) and prints its output; the
// exit code says whether it worked, so CI can run one-off tasks and fail with them.

import type { RpcResult } from '../api.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth rpc APP EXPR [--timeout MS]

Evaluates EXPR (Elixir, one argument: quote it) on APP's running node with bin/APP rpc and prints what it
printed. Exits 0 when the command exited 0; otherwise 1, with its exit code (or the timeout) on stderr.
Needs the console scope; the expression (truncated) goes to the audit trail, the output does not.
  --timeout MS   kill it after MS milliseconds (100 to 600000, default 30000)

Example: berth rpc hello 'IO.puts(Application.spec(:hello, :vsn))'

${CONNECTION_HELP}
`

const OPTIONS = { timeout: { type: 'string' } } as const

export const command: Command = { help: HELP, options: { ...COMMON_OPTIONS, ...OPTIONS }, run: rpcCommand }

async function rpcCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, OPTIONS)
  if (helped(values, HELP)) return 0
  const app = appArg(positionals[0], 'berth rpc APP EXPR')
  const [expr, ...extra] = positionals.slice(1)
  if (!expr) throw new UsageError(`rpc needs the expression: berth rpc ${app} 'IO.puts(1 + 1)'`)
  if (extra.length) throw new UsageError(`rpc takes the expression as one argument; quote it (got ${positionals.length - 1} arguments)`)
  const body: { expr: string; timeoutMs?: number } = { expr }
  if (values.timeout !== undefined) {
    const ms = Number(values.timeout)
    if (!/^\d+$/.test(values.timeout) || ms < 100 || ms > 600_000) throw new UsageError(`--timeout must be milliseconds from 100 to 600000, not "${values.timeout}"`)
    body.timeoutMs = ms
  }
  const r = await client(values, env).request<RpcResult>('POST', appPath(app, '/rpc'), body)
  if (values.json) printJson(r)
  else process.stdout.write(r.output)
  if (r.timedOut) {
    process.stderr.write(`berth: the expression was killed after ${body.timeoutMs ?? 30_000} ms\n`)
    return 1
  }
  if (r.code !== 0) {
    process.stderr.write(`berth: bin/${app} rpc exited with code ${r.code ?? 'none (killed)'}\n`)
    return 1
  }
  return 0
}
