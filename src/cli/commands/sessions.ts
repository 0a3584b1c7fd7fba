// `berth sessions APP [download ID]`: the app's console sessions (who, when, how it ended), and a session's
// recording as an asciicast v2 file (asciinema play FILE replays it).

import fs from 'node:fs'
import { pipeline } from 'node:stream/promises'
import type { Session } from '../api.js'
import { bytes, table, when } from '../format.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth sessions APP
       berth sessions APP download ID [--output FILE]

Without a subcommand: APP's console sessions, newest first: ID, KIND (remote or attach), BY (the token),
STARTED, ENDED (or "active"), EXIT code, IN/OUT bytes, and whether a RECORDING is kept.
download  writes session ID's recording (asciicast v2, output only: typed input is never recorded) to
          --output FILE, or to stdout. Replay it with asciinema play FILE.
Needs the console scope.

${CONNECTION_HELP}
`

const OPTIONS = { output: { type: 'string', short: 'o' } } as const

export const command: Command = { help: HELP, options: { ...COMMON_OPTIONS, ...OPTIONS }, run: sessionsCommand }

async function sessionsCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, OPTIONS)
  if (helped(values, HELP)) return 0
  const app = appArg(positionals[0], 'berth sessions APP [download ID]')
  const [sub, id, ...extra] = positionals.slice(1)
  if (extra.length) throw new UsageError(`too many arguments: ${extra.join(' ')}`)
  const api = client(values, env)
  if (sub === 'download') {
    if (!id) throw new UsageError(`sessions download needs the session id: berth sessions ${app} download ID`)
    if (values.json) throw new UsageError('a recording is asciicast, not JSON; drop --json')
    const res = await api.stream(appPath(app, `/sessions/${encodeURIComponent(id)}.cast`), 'application/x-asciicast')
    if (typeof values.output === 'string') {
      await pipeline(res, fs.createWriteStream(values.output, { flags: 'wx', mode: 0o600 }))
      process.stderr.write(`wrote ${values.output} (${bytes(fs.statSync(values.output).size)})\n`)
    } else {
      await pipeline(res, process.stdout)
    }
    return 0
  }
  if (sub !== undefined) throw new UsageError(`unknown sessions command "${sub}"; use download ID`)
  if (values.output !== undefined) throw new UsageError('--output goes with sessions download')
  const answer = await api.request<{ sessions: Session[] }>('GET', appPath(app, '/sessions'))
  if (values.json) {
    printJson(answer)
    return 0
  }
  if (answer.sessions.length === 0) {
    process.stdout.write(`${app} has no console sessions\n`)
    return 0
  }
  const rows = answer.sessions.map((s) => [
    s.id,
    s.kind,
    s.actor ?? '-',
    when(s.startedAt),
    s.active ? 'active' : when(s.endedAt),
    s.exitCode === null ? '-' : String(s.exitCode),
    `${bytes(s.bytesIn)}/${bytes(s.bytesOut)}`,
    s.recording ? 'yes' : 'no',
  ])
  process.stdout.write(table([['ID', 'KIND', 'BY', 'STARTED', 'ENDED', 'EXIT', 'IN/OUT', 'RECORDING'], ...rows]))
  return 0
}
