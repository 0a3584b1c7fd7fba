// `berth token create|list|revoke`: manages tokens directly in the data directory's database, so it works
// while the daemon runs (SQLite WAL). `create` prints the token alone so scripts can capture it.

import pino from 'pino'
import { isExpired, parseLifetime, parseScopes, TokenInputError } from '../auth/tokens.js'
import { loadConfig } from '../config.js'
import { openTokenStore } from '../services.js'
import type { Command } from './commands/common.js'
import { DATA_DIR_OPTIONS, parseSubcommand } from './data-dir.js'
import { UsageError } from './usage.js'

const HELP = `usage:
  berth token create --name NAME --scopes S1,S2 [--app APP]... [--expires 30d] [--data-dir DIR]
  berth token list [--json] [--data-dir DIR]
  berth token revoke NAME [--data-dir DIR]

Scopes: read, deploy, operate, console, admin (admin implies all). --app limits the token to an app
(repeat it for several); without it the token works for every app. --expires ends the token after that
long (s, m, h or d, e.g. 12h or 30d): it is then refused like a revoked one. Revoking or expiring a token
also closes what it has open (consoles, log streams, uploads) within a second.
`

const OPTIONS = {
  ...DATA_DIR_OPTIONS,
  name: { type: 'string' },
  scopes: { type: 'string' },
  app: { type: 'string', multiple: true },
  expires: { type: 'string' },
} as const

export const command: Command = { help: HELP, options: OPTIONS, run: tokenCommand }

async function tokenCommand(argv: string[]): Promise<number> {
  const parsed = parseSubcommand(argv, OPTIONS, HELP)
  if (parsed.exit !== null) return parsed.exit
  const { values, sub, args } = parsed
  const config = loadConfig(process.env, { 'data-dir': values['data-dir'] })
  // The CLI's own log lines (migrations applied) go to stderr so stdout stays machine-readable.
  const log = pino({ level: 'warn' }, pino.destination(2))
  const { db, tokens } = await openTokenStore(config, log)
  try {
    switch (sub) {
      case 'create': {
        if (!values.name) throw new UsageError('token create needs --name NAME')
        if (!values.scopes) throw new UsageError('token create needs --scopes (e.g. --scopes read,deploy)')
        const apps = (values.app ?? []).flatMap((a) => a.split(',')).map((a) => a.trim()).filter(Boolean)
        const lifetimeMs = values.expires === undefined ? null : parseLifetime(values.expires)
        const { token } = tokens.create({ name: values.name, scopes: parseScopes(values.scopes), apps, lifetimeMs })
        process.stdout.write(`${token}\n`)
        return 0
      }
      case 'list': {
        const list = tokens.list()
        if (values.json) {
          process.stdout.write(`${JSON.stringify(list, null, 2)}\n`)
          return 0
        }
        const expiry = (t: (typeof list)[number]) => (t.expiresAt === null ? 'never' : isExpired(t) ? `${t.expiresAt} (expired)` : t.expiresAt)
        const rows = [['NAME', 'SCOPES', 'APPS', 'CREATED', 'EXPIRES', 'LAST USED'], ...list.map((t) => [t.name, t.scopes.join(','), t.apps?.join(',') ?? '*', t.createdAt, expiry(t), t.lastUsedAt ?? '-'])]
        const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
        for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`)
        return 0
      }
      case 'revoke': {
        const name = args[0]
        if (!name) throw new UsageError('token revoke needs the token name')
        if (!tokens.revoke(name)) {
          process.stderr.write(`berth: no token named "${name}"\n`)
          return 1
        }
        process.stderr.write(`revoked token "${name}"\n`)
        return 0
      }
      default:
        throw new UsageError(`unknown token command "${sub}"; run berth token --help`)
    }
  } catch (err) {
    if (err instanceof TokenInputError) {
      process.stderr.write(`berth: ${err.message}\n`)
      return 2
    }
    throw err
  } finally {
    db.close()
  }
}
