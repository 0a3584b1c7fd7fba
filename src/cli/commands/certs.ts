// `berth certs APP | certs put APP HOST --cert FILE --key FILE | certs delete APP HOST`: the certificates
// the edge serves an app's hostnames with, and the custom ones an operator installs or removes.

import fs from 'node:fs'
import type { Certificate } from '../api.js'
import { table, when } from '../format.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth certs APP
       berth certs put APP HOST --cert FILE --key FILE
       berth certs delete APP HOST

Lists the certificate of each of APP's hostnames (proxy.hosts): HOST, SOURCE (acme or custom), STATE
(valid, pending, renewing, failed, missing, expired), NOT AFTER (local time), ISSUER and LAST ERROR.
An ACME certificate renews itself at two thirds of its lifetime; a failed renewal keeps the current one.
put     installs a custom certificate for HOST (the app's proxy.tls must be "custom"): --cert FILE is the
        PEM chain (any order: berth puts the leaf first), --key FILE its unencrypted PEM key. Refused with
        a code when the key does not match, the certificate is expired or does not cover HOST.
delete  removes HOST's custom certificate. Both need the deploy scope.

${CONNECTION_HELP}
`

const OPTIONS = { cert: { type: 'string' }, key: { type: 'string' } } as const

export const command: Command = { help: HELP, options: { ...COMMON_OPTIONS, ...OPTIONS }, run: certsCommand }

function readPem(file: string | undefined, flag: string): string {
  if (!file) throw new UsageError(`certs put needs ${flag} FILE`)
  try {
    return fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

async function certsCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, OPTIONS)
  if (helped(values, HELP)) return 0
  // "put" and "delete" are valid app names too: they are subcommands when an app and a host follow.
  const sub = positionals.length === 3 && (positionals[0] === 'put' || positionals[0] === 'delete') ? positionals[0] : null
  if (!sub && positionals.length > 1) throw new UsageError(`too many arguments: ${positionals.slice(1).join(' ')} (berth certs APP, certs put APP HOST, certs delete APP HOST)`)
  if (sub !== 'put' && (values.cert !== undefined || values.key !== undefined)) throw new UsageError('--cert and --key go with certs put APP HOST')
  const app = appArg(sub ? positionals[1] : positionals[0], 'berth certs APP')
  const api = client(values, env)
  if (sub) {
    const host = positionals[2]!
    const url = appPath(app, `/certificates/${encodeURIComponent(host)}`)
    if (sub === 'delete') {
      await api.request('DELETE', url)
      if (values.json) printJson({ deleted: host })
      else process.stdout.write(`removed the custom certificate of ${host} (${app})\n`)
      return 0
    }
    const cert = await api.request<Certificate>('PUT', url, { cert: readPem(values.cert, '--cert'), key: readPem(values.key, '--key') })
    if (values.json) printJson(cert)
    else process.stdout.write(`${host}: installed, valid until ${when(cert.notAfter)}, issued by ${cert.issuer}\n`)
    return 0
  }
  const answer = await api.request<{ certificates: Certificate[] }>('GET', appPath(app, '/certificates'))
  if (values.json) {
    printJson(answer)
    return 0
  }
  if (answer.certificates.length === 0) {
    process.stdout.write(`${app} has no hostnames on the edge (proxy.hosts)\n`)
    return 0
  }
  const rows = answer.certificates.map((c) => [c.host, c.source ?? 'off', c.state, c.notAfter ? when(c.notAfter) : '-', c.issuer ?? '-', c.lastError ?? '-'])
  process.stdout.write(table([['HOST', 'SOURCE', 'STATE', 'NOT AFTER', 'ISSUER', 'LAST ERROR'], ...rows]))
  return 0
}
