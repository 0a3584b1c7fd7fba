// The `berth` command: dispatches to the daemon (`serve`), the local token tools and the operator client
// commands that talk to a running berth over HTTP. Each command parses its own flags with node:util
// parseArgs and has --help; errors are one sentence on stderr, usage errors exit 2, refusals exit 1.

import { ConfigError } from '../config.js'
import { isBerthError } from '../errors.js'
import { UsageError } from './usage.js'
import { ApiError } from './client.js'

const USAGE = `usage: berth <command> [options]

commands:
  serve                         run the daemon (see berth serve --help)
  token create --name N --scopes S1,S2 [--app APP]...
                                create a token; prints only the token
  token list [--json]           list tokens (never their secrets)
  token revoke NAME             revoke a token
  import [--json]               rebuild the release catalogue in berth.db from the release
                                directories on disk (after the database was lost or damaged)

client commands (talk to a running berth):
  deploy FILE --app APP [--no-deploy]
                                upload a release with progress, deploy it and follow the steps
  deploy --release ID --app APP deploy a release uploaded before
  deploy ... --dry-run          what the deploy would do, changing nothing (like plan)
  plan APP RELEASE              the plan of deploying RELEASE: steps, migrations, config diffs,
                                ERTS/OTP change, what would stop it; changes nothing
  rollback APP [--to ID]        roll back (to the previous good release, or ID) and follow it
  status [APP]                  apps and their nodes, or one app in detail
  releases APP                  an app's releases, the current one marked
  logs APP [-f] [--lines N] [--source console|berth]
                                the node's console output (or berth's lines about the app)
  env APP list | replace K=V... [--from-file FILE] [--restart]
                                environment variable names; replace the whole environment
  settings APP [get [KEY...] | set KEY=VALUE...]
                                show or change the app's settings (restart.maxRestarts=3)
  console APP [--attach]        remote IEx (or the node's own console) in this terminal

serve, token and import take --data-dir (or BERTH_DATA_DIR, default ./var). The client commands take --url and
--token (or BERTH_URL, default http://127.0.0.1:4100, and BERTH_TOKEN) and --json. Every command takes
--help.
`

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  // Commands are imported when run: the daemon's modules (Fastify, SQLite, node-pty) would otherwise add
  // most of a second to every client command a CI job runs.
  try {
    switch (command) {
      case 'serve':
        return await (await import('./serve.js')).serveCommand(rest)
      case 'token':
        return await (await import('./token.js')).tokenCommand(rest)
      case 'import':
        return await (await import('./import.js')).importCommand(rest)
      case 'console':
        return await (await import('./console.js')).consoleCommand(rest)
      case 'deploy':
        return await (await import('./commands/deploy.js')).deployCommand(rest)
      case 'plan':
        return await (await import('./commands/plan.js')).planCommand(rest)
      case 'rollback':
        return await (await import('./commands/deploy.js')).rollbackCommand(rest)
      case 'status':
        return await (await import('./commands/status.js')).statusCommand(rest)
      case 'releases':
        return await (await import('./commands/releases.js')).releasesCommand(rest)
      case 'logs':
        return await (await import('./commands/logs.js')).logsCommand(rest)
      case 'env':
        return await (await import('./commands/env.js')).envCommand(rest)
      case 'settings':
        return await (await import('./commands/settings.js')).settingsCommand(rest)
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE)
        return command === undefined ? 2 : 0
      default:
        throw new UsageError(`unknown command "${command}"; run berth --help`)
    }
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
