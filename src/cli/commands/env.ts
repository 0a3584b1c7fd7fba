// `berth env APP list | set | unset | replace`: the app's environment. berth never returns values, so single
// variables change through the server-side merge (PATCH), and `replace` sends the whole environment (PUT),
// reporting the names it removed.

import fs from 'node:fs'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth env APP list
       berth env APP set K=V ... [--from-file FILE] [--restart]
       berth env APP unset K ... [--restart]
       berth env APP replace [K=V ...] [--from-file FILE] [--restart]

list     prints the names of APP's environment variables (berth never shows values).
set      adds or changes the variables given (from --from-file, then the K=V arguments, which win);
         every other variable keeps its value. Creates the app.
unset    removes the names given; names that are not set are reported, not an error.
replace  sets APP's whole environment to exactly the variables given and prints the names it removed.

--from-file FILE  a .env file: KEY=VALUE lines, # comments, optional "export ", '...' or "..." quoting;
                  - reads stdin (for set and replace)
--restart         restart the running node now with the new environment (otherwise it takes effect at
                  the next start)

set and unset are one PATCH /v1/apps/APP/env: the server merges, since values never leave it.
Values on the command line are visible in ps and shell history; prefer --from-file for secrets.

${CONNECTION_HELP}
`

const OPTIONS = { 'from-file': { type: 'string' }, restart: { type: 'boolean' } } as const

export const command: Command = { help: HELP, options: { ...COMMON_OPTIONS, ...OPTIONS }, run: envCommand }

type Names = { names: string[] }

async function envCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, OPTIONS)
  if (helped(values, HELP)) return 0
  const app = appArg(positionals[0], 'berth env APP list|set|unset|replace')
  const [sub, ...args] = positionals.slice(1)
  const restartQuery = values.restart ? '?restart=true' : ''
  const after = () => process.stdout.write(values.restart ? 'restarted with the new environment\n' : 'takes effect at the next start (or pass --restart)\n')
  switch (sub) {
    case 'list':
    case undefined: {
      if (args.length) throw new UsageError(`env list takes no arguments, got ${args.join(' ')}`)
      if (values['from-file'] || values.restart) throw new UsageError('--from-file and --restart go with env set, unset and replace')
      const { names } = await client(values, env).request<Names>('GET', appPath(app, '/env'))
      if (values.json) printJson({ names })
      else process.stdout.write(names.length ? `${names.join('\n')}\n` : `${app} has no environment variables\n`)
      return 0
    }
    case 'set': {
      const vars = variables(args, values['from-file'])
      if (Object.keys(vars).length === 0) throw new UsageError('env set needs K=V arguments (or --from-file with variables in it)')
      const answer = await client(values, env).request<Names & { removed: string[] }>('PATCH', appPath(app, `/env${restartQuery}`), { set: vars })
      if (values.json) {
        printJson(answer)
        return 0
      }
      process.stdout.write(`${app}: set ${Object.keys(vars).sort().join(', ')}\n`)
      after()
      return 0
    }
    case 'unset': {
      if (values['from-file']) throw new UsageError('--from-file goes with env set and replace; unset takes names')
      if (args.length === 0) throw new UsageError('env unset needs the names to remove')
      const bad = args.find((a) => a.includes('='))
      if (bad) throw new UsageError(`env unset takes names, not "${bad}"`)
      const answer = await client(values, env).request<Names & { removed: string[] }>('PATCH', appPath(app, `/env${restartQuery}`), { unset: args })
      if (values.json) {
        printJson(answer)
        return 0
      }
      const missing = args.filter((n) => !answer.removed.includes(n))
      if (answer.removed.length) process.stdout.write(`${app}: removed ${answer.removed.join(', ')}\n`)
      if (missing.length) process.stdout.write(`not set, nothing to remove: ${missing.join(', ')}\n`)
      if (answer.removed.length) after()
      return 0
    }
    case 'replace': {
      const file = values['from-file']
      const vars = variables(args, file)
      if (Object.keys(vars).length === 0 && file === undefined) {
        throw new UsageError('env replace needs the variables (K=V or --from-file); to remove them all, use --from-file /dev/null')
      }
      const api = client(values, env)
      // An app that does not exist yet has no names to lose; PUT creates it.
      const before = await api.request<Names>('GET', appPath(app, '/env')).catch((err: { code?: string }) => {
        if (err.code === 'APP_NOT_FOUND') return { names: [] }
        throw err
      })
      const answer = await api.request<Names & Record<string, unknown>>('PUT', appPath(app, `/env${restartQuery}`), vars)
      const removed = before.names.filter((n) => !(n in vars))
      if (values.json) {
        printJson({ ...answer, removed })
        return 0
      }
      const names = Object.keys(vars).sort()
      process.stdout.write(`${app}: ${names.length ? names.join(', ') : 'no variables'}\n`)
      if (removed.length) process.stdout.write(`removed: ${removed.join(', ')}\n`)
      after()
      return 0
    }
    default:
      throw new UsageError(`unknown env command "${sub}"; use list, set, unset or replace`)
  }
}

/** The variables of --from-file, then the K=V arguments (which win). */
function variables(args: string[], file: string | boolean | undefined): Record<string, string> {
  const vars: Record<string, string> = {}
  if (typeof file === 'string') Object.assign(vars, parseDotenv(readSource(file), file))
  for (const a of args) {
    const eq = a.indexOf('=')
    if (eq <= 0) throw new UsageError(`"${a}" is not KEY=VALUE`)
    vars[a.slice(0, eq)] = a.slice(eq + 1)
  }
  return vars
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
