// What every client command shares: the --url/--token/--cacert/--json/--help flags, building the client from
// them (or BERTH_URL/BERTH_TOKEN/BERTH_CA_FILE), app-name checks and path escaping.

import fs from 'node:fs'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { BerthClient, connection, DEFAULT_URL } from '../client.js'
import { UsageError } from '../usage.js'

export const SERVER_HELP = `Server and token: --url URL and --token TOKEN, or BERTH_URL and BERTH_TOKEN (default URL
${DEFAULT_URL}). --cacert FILE (or BERTH_CA_FILE): the PEM certificate (or CA) to trust for
an https:// berth with a self-signed or private certificate. Errors print berth's explanation and its
code on stderr and exit 1; wrong arguments exit 2.`

export const CONNECTION_HELP = `${SERVER_HELP}
--json prints berth's JSON answer instead of text, for scripts.`

export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  url: { type: 'string' },
  token: { type: 'string' },
  cacert: { type: 'string' },
  json: { type: 'boolean' },
} as const

export type Options = NonNullable<ParseArgsConfig['options']>

/**
 * One `berth` command: its help, the options it parses (test/cli-commands.test.ts checks that the help
 * names every one) and its work. Exit codes: 0 done, 1 refused or failed, 2 wrong arguments.
 */
export interface Command {
  help: string
  options: Options
  run(argv: string[], env?: NodeJS.ProcessEnv): Promise<number>
}

/** parseArgs with the common flags added; strict, positionals allowed. */
export function parse<O extends Options>(argv: string[], options: O) {
  return parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true })
}

/** The client for the flags; `anonymous` for the routes that need no token (/healthz, /openapi.yaml). */
export function client(values: { url?: string | boolean; token?: string | boolean; cacert?: string | boolean }, env: NodeJS.ProcessEnv, opts: { anonymous?: boolean } = {}): BerthClient {
  const { url, token, caFile } = connection({ url: str(values.url), token: str(values.token), cacert: str(values.cacert) }, env)
  if (!token && !opts.anonymous) throw new UsageError('no token: pass --token or set BERTH_TOKEN (berth token create prints one)')
  if (!/^https?:\/\/[^/]+/.test(url)) throw new UsageError(`--url must be an http:// or https:// URL, not "${url}"`)
  return new BerthClient(url, token ?? '', { ca: caArg(caFile) })
}

/** The CA file of --cacert or BERTH_CA_FILE, read; undefined without one; a usage error naming the file. */
export function caArg(file: string | undefined): Buffer | undefined {
  if (file === undefined || file === '') return undefined
  let pem: Buffer
  try {
    pem = fs.readFileSync(file)
  } catch (err) {
    throw new UsageError(`cannot read the CA file ${file} (--cacert or BERTH_CA_FILE): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`the CA file ${file} (--cacert or BERTH_CA_FILE) holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
  return pem
}

function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined
}

// The server checks names too; checking here turns a typo into a usage error instead of a 404 on a odd path.
const APP = /^(?=.{1,64}$)[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*$/

export function appArg(app: string | undefined, usage: string): string {
  if (!app) throw new UsageError(`missing the app name: ${usage}`)
  if (!APP.test(app)) throw new UsageError(`"${app}" is not an app name (lowercase letters, digits, _ and single - inside, starting with a letter)`)
  return app
}

export function appPath(app: string, rest = ''): string {
  return `/v1/apps/${encodeURIComponent(app)}${rest}`
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** Prints the help text and says whether the command should stop (with exit 0). */
export function helped(values: { help?: string | boolean }, help: string): boolean {
  if (values.help) process.stdout.write(help)
  return !!values.help
}
