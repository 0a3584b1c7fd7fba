// `berth env APP list | replace`: the app's environment. The API replaces the whole environment on PUT and
// never shows values, so the client cannot merge one variable into it: the only write is an explicit
// replace of everything, which reports the names it removed.

import fs from 'node:fs'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, CONNECTION_HELP, helped, parse, printJson } from './common.js'

const HELP = `usage: berth env APP list
       berth env APP replace [K=V ...] [--from-file FILE] [--restart]

list     prints the names of APP's environment variables (berth never shows values).
replace  sets APP's whole environment to exactly the variables given: from --from-file (a .env file:
         KEY=VALUE lines, # comments, optional "export ", '...' or "..." quoting; - reads stdin),
         then the K=V arguments (which win). Every variable not given is removed, and the command
         prints the names it removed. Takes effect at the node's next start; --restart restarts now.

Why no "set K=V" or "unset K": berth returns names but never values, so the client cannot
add or remove one variable without knowing the others' values, and sending only K=V would silently
drop the rest. Keep the app's environment in a file (e.g. from your secret store) and replace it whole.
Values on the command line are visible in ps and shell history; prefer --from-file for secrets.

${CONNECTION_HELP}
`

type Names = { names: string[] }

export async function envCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, { 'from-file': { type: 'string' }, restart: { type: 'boolean' } })
  if (helped(values, HELP)) return 0
  const app = appArg(positionals[0], 'berth env APP list|replace')
  const [sub, ...args] = positionals.slice(1)
  switch (sub) {
    case 'list':
    case undefined: {
      if (args.length) throw new UsageError(`env list takes no arguments, got ${args.join(' ')}`)
      if (values['from-file'] || values.restart) throw new UsageError('--from-file and --restart go with env replace')
      const { names } = await client(values, env).request<Names>('GET', appPath(app, '/env'))
      if (values.json) printJson({ names })
      else process.stdout.write(names.length ? `${names.join('\n')}\n` : `${app} has no environment variables\n`)
      return 0
    }
    case 'replace': {
      const vars: Record<string, string> = {}
      const file = values['from-file']
      if (typeof file === 'string') Object.assign(vars, parseDotenv(readSource(file), file))
      for (const a of args) {
        const eq = a.indexOf('=')
        if (eq <= 0) throw new UsageError(`"${a}" is not KEY=VALUE`)
        vars[a.slice(0, eq)] = a.slice(eq + 1)
      }
      if (Object.keys(vars).length === 0 && file === undefined) {
        throw new UsageError('env replace needs the variables (K=V or --from-file); to remove them all, use --from-file /dev/null')
      }
      const api = client(values, env)
      // An app that does not exist yet has no names to lose; PUT creates it.
      const before = await api.request<Names>('GET', appPath(app, '/env')).catch((err: { code?: string }) => {
        if (err.code === 'APP_NOT_FOUND') return { names: [] }
        throw err
      })
      const answer = await api.request<Names & Record<string, unknown>>('PUT', appPath(app, `/env${values.restart ? '?restart=true' : ''}`), vars)
      const removed = before.names.filter((n) => !(n in vars))
      if (values.json) {
        printJson({ ...answer, removed })
        return 0
      }
      const names = Object.keys(vars).sort()
      process.stdout.write(`${app}: ${names.length ? names.join(', ') : 'no variables'}\n`)
      if (removed.length) process.stdout.write(`removed: ${removed.join(', ')}\n`)
      process.stdout.write(values.restart ? 'restarted with the new environment\n' : 'takes effect at the next start (or pass --restart)\n')
      return 0
    }
    case 'set':
    case 'unset':
      throw new UsageError(
        `env ${sub} cannot work: berth never shows values, so changing one variable would drop the others; use "berth env ${app} replace" with all of them (see berth env --help)`,
      )
    default:
      throw new UsageError(`unknown env command "${sub}"; use list or replace`)
  }
}

function readSource(file: string): string {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
  }
}

/** A .env file: KEY=VALUE, blank lines and # comments, optional `export `, single or double quotes. */
export function parseDotenv(text: string, name = '.env'): Record<string, string> {
  const out: Record<string, string> = {}
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    if (!line || line.startsWith('#')) return
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line)
    if (!m) throw new UsageError(`${name} line ${i + 1} is not KEY=VALUE`)
    let value = m[2]!
    const quote = value[0]
    if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) {
      value = value.slice(1, -1)
      if (quote === '"') value = value.replace(/\\([nrt"\\])/g, (_, c: string) => ({ n: '\n', r: '\r', t: '\t' })[c] ?? c)
    } else {
      // Unquoted: an inline comment needs a space before the #, as in most dotenv readers.
      value = value.replace(/\s+#.*$/, '')
    }
    out[m[1]!] = value
  })
  return out
}
