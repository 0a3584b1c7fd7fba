// Wires berth's domain services from the config: database, stores, intake. No Fastify here, so the CLI,
// the daemon and tests build the same graph; `close` releases everything that was opened.

import fs from 'node:fs/promises'
import type { Logger } from 'pino'
import { TokenStore } from './auth/tokens.js'
import type { Config } from './config.js'
import { writeNewFile } from './fsutil.js'
import { sweepDebris } from './intake/cleanup.js'
import { Intake } from './intake/intake.js'
import { Paths } from './paths.js'
import { openDatabase, type Database } from './store/db.js'
import { EventStore } from './store/events.js'
import { ReleaseStore } from './store/releases.js'

export interface Services {
  config: Config
  log: Logger
  paths: Paths
  db: Database
  tokens: TokenStore
  releases: ReleaseStore
  events: EventStore
  intake: Intake
  /** Aborted when the daemon gives up on in-flight work during shutdown. */
  shutdown: AbortController
  close(): void
}

export async function ensureDataDir(paths: Paths): Promise<void> {
  await fs.mkdir(paths.dataDir, { recursive: true, mode: 0o750 })
  await fs.mkdir(paths.apps, { recursive: true, mode: 0o755 })
  await fs.mkdir(paths.uploads, { recursive: true, mode: 0o700 })
}

/** Opens only the database and token store: what `berth token ...` needs next to a running daemon. */
export async function openTokenStore(config: Config, log: Logger): Promise<{ db: Database; tokens: TokenStore }> {
  const paths = new Paths(config.dataDir)
  await fs.mkdir(paths.dataDir, { recursive: true, mode: 0o750 })
  const db = openDatabase(paths.db, log)
  return { db, tokens: new TokenStore(db) }
}

export async function createServices(config: Config, log: Logger): Promise<Services> {
  const paths = new Paths(config.dataDir)
  await ensureDataDir(paths)
  const db = openDatabase(paths.db, log)
  const tokens = new TokenStore(db)
  const releases = new ReleaseStore(db)
  const events = new EventStore(db)
  const intake = new Intake({ paths, releases, events, limits: config.limits, log })
  return {
    config,
    log,
    paths,
    db,
    tokens,
    releases,
    events,
    intake,
    shutdown: new AbortController(),
    close: () => db.close(),
  }
}

/** Start-up duties of the daemon (not of the CLI): clear debris and make sure someone can log in. */
export async function prepareDaemon(s: Services): Promise<void> {
  await sweepDebris(s)
  if (s.tokens.count() === 0) {
    const { token } = s.tokens.create({ name: 'initial-admin', scopes: ['admin'] })
    await fs.rm(s.paths.initialAdminToken, { force: true })
    await writeNewFile(s.paths.initialAdminToken, `${token}\n`, 0o600)
    s.events.record({ action: 'token.create', outcome: 'ok', actor: 'berth', detail: { name: 'initial-admin', scopes: ['admin'] } })
    s.log.warn({ file: s.paths.initialAdminToken }, 'no tokens existed: created an admin token and wrote it to this file (readable by its owner only); create your own with `berth token create` and revoke "initial-admin"')
  }
}
