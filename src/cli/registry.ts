// Every `berth` command, each loaded only when run (the daemon's modules, SQLite and node-pty would add most
// of a second to every client command a CI job runs), and the command that reaches each API operation.

import type { OperationId } from '../http/context.js'
import type { Command } from './commands/common.js'

/** A command whose module does not (yet) declare its help and options as a Command. */
type Bare = Pick<Command, 'run'> & { help: null; options: null }

export const COMMANDS = {
  serve: async () => (await import('./serve.js')).command,
  token: async () => (await import('./token.js')).command,
  import: async () => (await import('./import.js')).command,
  keys: async () => (await import('./keys.js')).command,
  plan: async () => (await import('./commands/plan.js')).command,
  deploy: async () => (await import('./commands/deploy.js')).deploy,
  rollback: async () => (await import('./commands/deploy.js')).rollback,
  status: async () => (await import('./commands/status.js')).command,
  releases: async () => (await import('./commands/releases.js')).command,
  deployments: async () => (await import('./commands/deployments.js')).command,
  start: async () => (await import('./commands/operate.js')).start,
  stop: async () => (await import('./commands/operate.js')).stop,
  restart: async () => (await import('./commands/operate.js')).restart,
  // logs.ts parses its own options; another change reworks it (--json), after which it exports a Command.
  logs: async (): Promise<Bare> => ({ run: (await import('./commands/logs.js')).logsCommand, help: null, options: null }),
  env: async () => (await import('./commands/env.js')).command,
  settings: async () => (await import('./commands/settings.js')).command,
  events: async () => (await import('./commands/events.js')).command,
  rpc: async () => (await import('./commands/rpc.js')).command,
  console: async () => (await import('./console.js')).command,
  sessions: async () => (await import('./commands/sessions.js')).command,
  webhooks: async () => (await import('./commands/webhooks.js')).command,
  certs: async () => (await import('./commands/certs.js')).command,
  fleet: async () => (await import('./commands/fleet.js')).command,
  pause: async () => (await import('./commands/edge.js')).pause,
  resume: async () => (await import('./commands/edge.js')).resume,
  edge: async () => (await import('./commands/edge.js')).edge,
  health: async () => (await import('./commands/meta.js')).health,
  metrics: async () => (await import('./commands/meta.js')).metrics,
  openapi: async () => (await import('./commands/meta.js')).openapi,
  whoami: async () => (await import('./commands/meta.js')).whoami,
} satisfies Record<string, () => Promise<Command | Bare>>

export type CommandName = keyof typeof COMMANDS

/** Commands that work on the data directory, not over HTTP: they reach no operation. */
export const LOCAL_COMMANDS: CommandName[] = ['serve', 'token', 'import', 'keys']

/**
 * How each operation of openapi.yaml is reached from the CLI: a command line (its first word a command),
 * a page for the browser, or an alias of another operation. Typed by operationId, so a new operation
 * does not compile until it is listed here; test/cli-commands.test.ts checks the rest both ways.
 */
export type Reach = CommandName | `${CommandName} ${string}` | { page: string } | { alias: OperationId }

/** Commands that reach an operation another command is listed for, in another mode of it. */
export const ALSO_REACHES: Partial<Record<CommandName, { operation: OperationId; how: string }>> = {
  plan: { operation: 'createDeployment', how: 'with ?dryRun=true: the plan, nothing changed' },
  fleet: { operation: 'createDeployment', how: 'on every host of a fleet file: canary first, then batches, halting on the first failure' },
}

export const OPERATIONS: Record<OperationId, Reach> = {
  getRoot: { page: '/' },
  healthz: 'health',
  getOpenApi: 'openapi',
  getMetrics: 'metrics',
  docs: { page: '/docs' },
  listApps: 'status',
  getApp: 'status APP',
  uploadRelease: 'deploy FILE --app APP',
  uploadReleasePut: { alias: 'uploadRelease' },
  listReleases: 'releases APP',
  getRelease: 'releases APP show ID',
  deleteRelease: 'releases APP delete ID',
  createDeployment: 'deploy --release ID --app APP',
  listDeployments: 'deployments APP',
  getDeployment: 'deployments APP ID',
  rollback: 'rollback APP',
  startApp: 'start APP',
  stopApp: 'stop APP',
  restartApp: 'restart APP',
  getSettings: 'settings APP get',
  putSettings: 'settings APP set',
  getEnv: 'env APP list',
  putEnv: 'env APP replace',
  patchEnv: 'env APP set',
  getLogs: 'logs APP',
  listEvents: 'events APP',
  remoteConsole: 'console APP',
  attachConsole: 'console APP --attach',
  rpc: 'rpc APP EXPR',
  listSessions: 'sessions APP',
  getRecording: 'sessions APP download ID',
  consolePage: { page: '/console/APP' },
  consoleAsset: { page: '/console/APP' },
  createWebhook: 'webhooks create',
  listWebhooks: 'webhooks list',
  deleteWebhook: 'webhooks delete ID',
  listDeliveries: 'webhooks deliveries ID',
  whoami: 'whoami',
  listCertificates: 'certs APP',
  putCertificate: 'certs put APP HOST --cert FILE --key FILE',
  deleteCertificate: 'certs delete APP HOST',
  streamEvents: 'events --follow',
  pauseApp: 'pause APP',
  resumeApp: 'resume APP',
  getEdge: 'edge',
}
