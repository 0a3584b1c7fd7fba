// `berth releases APP`: the app's uploaded releases, newest first, with the current one marked.

import type { Release } from '../api.js'
import { bytes, table, when } from '../format.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, CONNECTION_HELP, helped, parse, printJson } from './common.js'

const HELP = `usage: berth releases APP

Lists APP's releases, newest first: ID (what deploy --release and rollback --to take), VERSION, CURRENT
(* marks the one apps/APP/current points at), SIZE uploaded, UPLOADED (local time) and BY (the token).

${CONNECTION_HELP}
`

export async function releasesCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, {})
  if (helped(values, HELP)) return 0
  const app = appArg(positionals[0], 'berth releases APP')
  if (positionals.length > 1) throw new UsageError(`releases takes one app, got ${positionals.join(' ')}`)
  const answer = await client(values, env).request<{ releases: Release[] }>('GET', appPath(app, '/releases'))
  if (values.json) {
    printJson(answer)
    return 0
  }
  if (answer.releases.length === 0) {
    process.stdout.write(`${app} has no releases\n`)
    return 0
  }
  const rows = answer.releases.map((r) => [r.id, r.version, r.current ? '*' : '', bytes(r.size), when(r.uploadedAt), r.uploadedBy ?? '-'])
  process.stdout.write(table([['ID', 'VERSION', 'CURRENT', 'SIZE', 'UPLOADED', 'BY'], ...rows]))
  return 0
}
