// The `berth` command: dispatches to the daemon (`serve`), the local token tools and the operator client
// commands that talk to a running berth over HTTP (see registry.ts). Each command parses its own flags with
// node:util parseArgs and has --help; errors are one sentence on stderr, usage errors exit 2, refusals exit 1.

import fs from 'node:fs'
import { ConfigError } from '../config.js'
import { isBerthError } from '../errors.js'
import { fromRoot } from '../root.js'
import { ApiError } from './client.js'
import { COMMANDS } from './registry.js'
import { UsageError } from './usage.js'

export const USAGE = `usage: berth <command> [options]

on this host (the data directory):
  serve                         run the daemon (see berth serve --help)
  token create --name N --scopes S1,S2 [--app APP]...
                                create a token; prints only the token
  token list [--json]           list tokens (never their secrets)
  token revoke NAME             revoke a token
  import [--json]               rebuild the release catalogue in berth.db from the release
                                directories on disk (after the database was lost or damaged)
  keys status | rotate | generate
                                the key that encrypts env values outside berth.db: show, rotate

releases and deployments:
  deploy FILE --app APP [--no-deploy]
                                upload a release with progress, deploy it and follow the steps
  deploy --release ID --app APP deploy a release uploaded before
  deploy ... --dry-run          what the deploy would do, changing nothing (like plan)
  plan APP RELEASE              the plan of deploying RELEASE: steps, migrations, config diffs,
                                ERTS/OTP change, what would stop it; changes nothing
  rollback APP [--to ID]        roll back (to the previous good release, or ID) and follow it
  releases APP [show ID | delete ID]
                                an app's releases, the current one marked; one of them; delete one
  deployments APP [ID]          deployment history, or one deployment with its steps and output
  fleet deploy TARBALL --fleet FILE | fleet status --fleet FILE | fleet rollback --fleet FILE
                                roll a release over many hosts: canary, batches, halt and put back

the node:
  status [APP]                  apps and their nodes, or one app in detail
  start APP | stop APP | restart APP
                                operate the node on the current release, following the steps
  logs APP [-f] [--lines N] [--source console|berth]
                                the node's console output (or berth's lines about the app)
  console APP [--attach]        remote IEx (or the node's own console) in this terminal
  rpc APP EXPR [--timeout MS]   evaluate an expression on the running node
  sessions APP [download ID]    console sessions; download a session's recording

configuration and audit:
  env APP list | set K=V... | unset K... | replace K=V... [--from-file FILE] [--restart]
                                environment variable names; change some, or replace them all
  settings APP [get [KEY...] | set KEY=VALUE...]
                                show or change the app's settings (restart.maxRestarts=3)
  events APP [--limit N]        the audit trail: who did what, when
  events --follow [APP]         the audit events of every app (or APP) as they happen
  whoami                        the token in use: its name, scopes and apps
  webhooks list | create --target URL | delete ID | deliveries ID
                                signed event notifications
  certs APP | certs put APP HOST --cert FILE --key FILE | certs delete APP HOST
                                the edge's certificates of the app's hostnames; install a custom one

the edge (one HTTPS front door for every app with proxy.hosts):
  edge                          the edge's listeners, haproxy and the apps it routes
  pause APP [--retry-after S] [--page FILE] | resume APP
                                answer 503 with Retry-After and a maintenance page on APP's hosts

berth itself:
  --version, -V                 berth's version (this CLI's package.json)
  health                        is berth up (no token needed)
  metrics                       Prometheus metrics
  openapi                       the API document berth serves

serve, token, import and keys take --data-dir (or BERTH_DATA_DIR, default ./var). The client commands take --url and
--token (or BERTH_URL, default http://127.0.0.1:4100, and BERTH_TOKEN), --cacert FILE (or BERTH_CA_FILE)
for an https:// berth with a self-signed certificate, and --json. Every command takes --help.
`

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      process.stdout.write(USAGE)
      return command === undefined ? 2 : 0
    }
    if (command === '--version' || command === '-V') {
      process.stdout.write(`berth ${version()}\n`)
      return 0
    }
    const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command as keyof typeof COMMANDS] : undefined
    if (!load) throw new UsageError(`unknown command "${command}"; run berth --help`)
    return await (await load()).run(rest)
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`berth: ${(err as Error).message}\n`)
      return 2
    }
    // What the server refused (or why it could not be reached): its sentence and the code scripts match on.
    if (err instanceof ApiError) {
      process.stderr.write(`berth: ${err.detail} (${err.code})\n`)
      return 1
    }
    // What berth itself refused at start (an unreadable database, an exposed data directory): same shape.
    if (isBerthError(err)) {
      process.stderr.write(`berth: ${err.message} (${err.code})\n`)
      return 1
    }
    throw err
  }
}

/** The version of this CLI's own package (berth health shows the daemon's, which may differ). */
function version(): string {
  return (JSON.parse(fs.readFileSync(fromRoot('package.json'), 'utf8')) as { version: string }).version
}
