// `berth settings APP [get [KEY...] | set KEY=VALUE...]`: the app's deploy and supervision settings, shown
// and changed as dotted keys (restart.maxRestarts=3) with JSON values, so what `get` prints `set` takes back.

import { LIMIT_FIELDS } from '../../apps/limits-settings.js'
import { DEFAULT_PROXY, DEFAULT_SETTINGS } from '../../apps/settings.js'
import { COMMAND_ROLES } from '../../releases/kinds.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth settings APP [get [KEY...]]
       berth settings APP set KEY=VALUE...

get  prints every setting (defaults included) as KEY = VALUE, or only the KEYs named.
set  changes the settings named; the others keep their value. A VALUE is read as JSON when it parses
     (3, true, null, "text", {"start":"foreground"}) and as a plain string otherwise. Nested settings
     take dotted keys: restart.maxRestarts=3 commands.start=foreground. Changing needs the admin scope.

Examples:
  berth settings hello set stableWindowMs=5000 healthUrl=http://127.0.0.1:4000/health
  berth settings hello set migrateExpr='Hello.Release.migrate()' restart.maxRestarts=3
  berth settings hello set healthUrl=null           # no health check
  berth settings hello set proxy.listen=0.0.0.0:80  # zero-downtime deploys behind haproxy; proxy=null: off

${wrap(`Settings: ${settingNames()}.`)}
The server checks names and ranges.

${CONNECTION_HELP}
`

type Settings = Record<string, unknown>

/**
 * Every setting the server takes, from its defaults (so a new setting cannot be missing from the help): nested
 * ones as NAME.{A,B}. Those whose default holds no keys to read are spelled out from their own definitions:
 * commands (roles of the command map, {} by default), proxy (null by default; listen plus its defaults) and limits.
 */
export function settingNames(): string {
  return Object.entries(DEFAULT_SETTINGS)
    .map(([name, value]) => {
      const keys = name === 'commands' ? [...COMMAND_ROLES] : name === 'proxy' ? ['listen', ...Object.keys(DEFAULT_PROXY)] : name === 'limits' ? [...LIMIT_FIELDS] : isObject(value) ? Object.keys(value) : []
      return keys.length ? `${name}.{${keys.join(',')}}` : name
    })
    .join(', ')
}

/** Words on lines of at most 104 characters, like the rest of the help. */
function wrap(text: string, width = 104): string {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line ? `${line} ${word}` : word
  }
  return [...lines, line].join('\n')
}

export const command: Command = { help: HELP, options: COMMON_OPTIONS, run: settingsCommand }

async function settingsCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, {})
  if (helped(values, HELP)) return 0
  const app = appArg(positionals[0], 'berth settings APP [get | set KEY=VALUE...]')
  const [sub, ...args] = positionals.slice(1)
  const api = client(values, env)
  switch (sub) {
    case undefined:
    case 'get': {
      const settings = await api.request<Settings>('GET', appPath(app, '/settings'))
      const flat = flatten(settings)
      const unknown = args.filter((k) => !flat.some(([key]) => key === k || key.startsWith(`${k}.`)))
      if (unknown.length) throw new UsageError(`no setting ${unknown.join(', ')}; run berth settings ${app} to see them all`)
      const shown = args.length ? flat.filter(([key]) => args.some((k) => key === k || key.startsWith(`${k}.`))) : flat
      if (values.json) printJson(args.length ? Object.fromEntries(shown) : settings)
      else process.stdout.write(shown.map(([k, v]) => `${k} = ${JSON.stringify(v)}\n`).join(''))
      return 0
    }
    case 'set': {
      if (args.length === 0) throw new UsageError('settings set needs KEY=VALUE arguments, e.g. stableWindowMs=5000')
      const patch: Settings = {}
      const dotted = new Set<string>()
      for (const a of args) {
        const eq = a.indexOf('=')
        if (eq <= 0) throw new UsageError(`"${a}" is not KEY=VALUE`)
        const path = a.slice(0, eq).split('.')
        if (path.some((p) => p === '')) throw new UsageError(`"${a.slice(0, eq)}" is not a setting name`)
        if (path.length > 1) dotted.add(path[0]!)
        assign(patch, path, parseValue(a.slice(eq + 1)))
      }
      if (dotted.size) {
        // PUT keeps settings it is not given, but a nested object it is given replaces the stored one whole:
        // restart.maxRestarts=3 alone would reset the other restart.* values. Send the whole object.
        const current = await api.request<Settings>('GET', appPath(app, '/settings'))
        for (const top of dotted) {
          const now = current[top]
          if (isObject(now) && isObject(patch[top])) patch[top] = { ...now, ...(patch[top] as Settings) }
        }
      }
      const answer = await api.request<Settings>('PUT', appPath(app, '/settings'), patch)
      if (values.json) {
        printJson(answer)
        return 0
      }
      const changed = args.map((a) => a.slice(0, a.indexOf('=')))
      const flat = flatten(answer).filter(([key]) => changed.some((k) => key === k || key.startsWith(`${k}.`)))
      process.stdout.write(flat.map(([k, v]) => `${k} = ${JSON.stringify(v)}\n`).join(''))
      // Saved but not in effect here, e.g. a limit the host cannot enforce: said, on stderr.
      const warnings = Array.isArray(answer.warnings) ? answer.warnings : []
      for (const w of warnings) process.stderr.write(`warning: ${String(w)}\n`)
      return 0
    }
    default:
      throw new UsageError(`unknown settings command "${sub}"; use get or set`)
  }
}

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function isObject(v: unknown): v is Settings {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function assign(target: Settings, path: string[], value: unknown): void {
  let node = target
  for (const key of path.slice(0, -1)) {
    if (!isObject(node[key])) node[key] = {}
    node = node[key] as Settings
  }
  node[path.at(-1)!] = value
}

/** Nested objects as dotted keys, in the server's order. */
function flatten(obj: Settings, prefix = ''): [string, unknown][] {
  return Object.entries(obj).flatMap(([k, v]): [string, unknown][] => (isObject(v) ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v]]))
}
