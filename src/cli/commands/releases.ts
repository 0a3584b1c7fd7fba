// `berth releases APP [show ID | delete ID]`: the app's uploaded releases, newest first, with the current one
// marked; one release in detail; deleting one (never the current one: the server refuses).

import type { Release } from '../api.js'
import { bytes, details, table, when } from '../format.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth releases APP
       berth releases APP show ID
       berth releases APP delete ID

Lists APP's releases, newest first: ID (what deploy --release and rollback --to take), VERSION, CURRENT
(* marks the one apps/APP/current points at), SIZE uploaded, UPLOADED (local time) and BY (the token).
show    one release: id, version, sha256, sizes, files, upload time and token, whether it is current.
delete  removes a release and its files (admin scope); the current one, and one an unfinished deployment
        names, are refused. ID is an id, or a version naming one release.

${CONNECTION_HELP}
`

export const command: Command = { help: HELP, options: COMMON_OPTIONS, run: releasesCommand }

async function releasesCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, {})
  if (helped(values, HELP)) return 0
  const app = appArg(positionals[0], 'berth releases APP [show ID | delete ID]')
  const [sub, id, ...extra] = positionals.slice(1)
  if (extra.length) throw new UsageError(`too many arguments: ${extra.join(' ')}`)
  const api = client(values, env)
  if (sub === 'show' || sub === 'delete') {
    if (!id) throw new UsageError(`releases ${sub} needs the release: berth releases ${app} ${sub} ID`)
    const r = await api.request<Release>(sub === 'show' ? 'GET' : 'DELETE', appPath(app, `/releases/${encodeURIComponent(id)}`))
    if (values.json) printJson(r)
    else if (sub === 'delete') process.stdout.write(`deleted ${r.id} (version ${r.version}) of ${app}\n`)
    else process.stdout.write(releaseDetails(r))
    return 0
  }
  if (sub !== undefined) throw new UsageError(`unknown releases command "${sub}"; use show ID or delete ID`)
  const answer = await api.request<{ releases: Release[] }>('GET', appPath(app, '/releases'))
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

function releaseDetails(r: Release): string {
  return details([
    ['id', r.id],
    ['version', r.version],
    ['current', r.current ? 'yes' : 'no'],
    ['sha256', r.sha256],
    ['size', `${bytes(r.size)} uploaded, ${bytes(r.unpackedBytes)} unpacked, ${r.files} files`],
    ['uploaded', `${when(r.uploadedAt)}${r.uploadedBy ? ` by ${r.uploadedBy}` : ''}`],
  ])
}
