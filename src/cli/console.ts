// `berth console APP [--attach]`: a remote IEx (or the node's own console) in the local terminal, over
// berth's websocket. Raw mode while connected, resizes passed on, the terminal restored however it ends.

import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { caArg, type Command } from './commands/common.js'
import { UsageError } from './usage.js'

const HELP = `usage: berth console APP [--attach] [--url URL] [--token TOKEN] [--cacert FILE]

Opens a remote IEx shell on APP's running node (bin/APP remote), or with --attach the node's own console
(Ctrl+C and Ctrl+G are blocked there; Ctrl+D detaches). The server and token come from --url/--token or
BERTH_URL/BERTH_TOKEN (default http://127.0.0.1:4100); --cacert FILE (or BERTH_CA_FILE) trusts the PEM
certificate of an https:// berth with a self-signed or private certificate. The token needs the
"console" scope.
Leave a remote shell with Ctrl+G then q. A terminal that reports no size is taken as 80x24.
`

const OPTIONS = { help: { type: 'boolean', short: 'h' }, attach: { type: 'boolean' }, url: { type: 'string' }, token: { type: 'string' }, cacert: { type: 'string' } } as const

export const command: Command = { help: HELP, options: OPTIONS, run: consoleCommand }

/** A pty that was never given a size (some CI runners, `script` without a terminal) reports 0 or nothing. */
export function terminalSize(out: { columns?: number; rows?: number }): { cols: number; rows: number } {
  return { cols: out.columns || 80, rows: out.rows || 24 }
}

async function consoleCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  const app = positionals[0]
  if (!app) throw new UsageError('console needs the app name: berth console APP')
  const base = (values.url ?? env.BERTH_URL ?? 'http://127.0.0.1:4100').replace(/\/$/, '')
  const token = values.token ?? env.BERTH_TOKEN
  if (!token) throw new UsageError('console needs a token: --token or BERTH_TOKEN')
  const url = `${base.replace(/^http/, 'ws')}/v1/apps/${encodeURIComponent(app)}/${values.attach ? 'attach' : 'remote'}`
  return runConsole(url, token, caArg(values.cacert ?? (env.BERTH_CA_FILE || undefined)))
}

function runConsole(url: string, token: string, ca: Buffer | undefined): Promise<number> {
  const stdin = process.stdin
  const stdout = process.stdout
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, ...(ca ? { ca } : {}) })
  let exitCode: number | null = null
  let raw = false
  const restore = () => {
    if (raw && stdin.isTTY) stdin.setRawMode(false)
    raw = false
    stdin.pause()
  }
  const resize = () => {
    if (ws.readyState === WebSocket.OPEN && stdout.isTTY) ws.send(JSON.stringify({ type: 'resize', ...terminalSize(stdout) }))
  }
  return new Promise((resolve) => {
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c))
      res.on('end', () => {
        try {
          const p = JSON.parse(body) as { detail: string; code: string }
          process.stderr.write(`berth: ${p.detail} (${p.code})\n`)
        } catch {
          process.stderr.write(`berth: the server answered ${res.statusCode}\n`)
        }
        resolve(1)
      })
    })
    ws.on('error', (err) => {
      restore()
      process.stderr.write(`berth: ${err.message}\n`)
      resolve(1)
    })
    ws.on('open', () => {
      if (stdin.isTTY) {
        stdin.setRawMode(true)
        raw = true
      }
      stdin.on('data', (d: Buffer) => ws.send(d, { binary: true }))
      stdin.resume()
      stdout.on('resize', resize)
      resize()
    })
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as { type: string; code?: number }
        if (msg.type === 'exit') exitCode = msg.code ?? 0
        return
      }
      // Backpressure: stop reading the socket while the local terminal cannot keep up.
      if (!stdout.write(data)) {
        const sock = (ws as unknown as { _socket: import('node:net').Socket })._socket
        sock.pause()
        stdout.once('drain', () => sock.resume())
      }
    })
    ws.on('close', (code, reason) => {
      restore()
      stdout.off('resize', resize)
      if (code >= 4000) {
        process.stderr.write(`\r\nberth: ${reason.toString() || `refused (${code})`}\n`)
        resolve(1)
      } else resolve(exitCode ?? 0)
    })
  })
}
