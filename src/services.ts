// Wires berth's domain services from the config: database, stores, intake, supervision, deploys, consoles.
// No Fastify here, so the CLI, the daemon and tests build the same graph; `close` releases what was opened.

import fsSync from 'node:fs'
import fs from 'node:fs/promises'
import type { Logger } from 'pino'
import { expectedReleaseName } from './apps/settings.js'
import { AppStore } from './apps/store.js'
import { TokenStore } from './auth/tokens.js'
import { TokenWatch } from './auth/watch.js'
import type { Config } from './config.js'
import { CrashPolicy } from './deploy/crash-policy.js'
import { Deployer } from './deploy/deployer.js'
import { problem } from './errors.js'
import { writeNewFile } from './fsutil.js'
import { sweepDebris } from './intake/cleanup.js'
import { Instances } from './instances/instances.js'
import { Intake } from './intake/intake.js'
import { importReleases } from './intake/reimport.js'
import { AppDirs } from './isolation/app-dirs.js'
import { AppLauncher } from './isolation/launch.js'
import { AppUsers, decideIsolation } from './isolation/users.js'
import { Paths } from './paths.js'
import { SETPRIV } from './process/proc.js'
import { ProxyManager } from './proxy/proxy.js'
import { AcmeManager } from './edge/acme.js'
import { CertificateStore } from './edge/certs.js'
import { Challenges } from './edge/challenges.js'
import { Edge } from './edge/edge.js'
import { Fallback } from './edge/fallback.js'
import { AccessLog } from './edge/access-log.js'
import { FrontDoor } from './edge/front.js'
import { AppLimits } from './isolation/limits.js'
import { openVault } from './secrets/open.js'
import type { EnvVault } from './secrets/env-vault.js'
import { detectKind, type ReleaseKind } from './releases/kinds.js'
import { releaseName } from './releases/script.js'
import { DistPorts } from './supervision/distribution.js'
import { SessionManager } from './sessions/manager.js'
import { Rpc } from './sessions/rpc.js'
import { openDatabase, type Database } from './store/db.js'
import { DeploymentStore } from './store/deployments.js'
import { EventStore } from './store/events.js'
import { ownerId } from './store/ids.js'
import { ReleaseStore } from './store/releases.js'
import { HealthMonitor } from './supervision/health.js'
import { AppLog } from './supervision/logs.js'
import { Supervisor } from './supervision/supervisor.js'
import { Webhooks } from './webhooks/webhooks.js'

export interface Services {
  config: Config
  /** How app processes start: as each app's own uid when isolation is on (isolation/launch.ts). */
  launcher: AppLauncher
  /** Who owns what in each app's directory (isolation/app-dirs.ts). */
  appDirs: AppDirs
  log: Logger
  paths: Paths
  db: Database
  tokens: TokenStore
  /** Ends a token's consoles, log streams and uploads when it is revoked or expires. */
  tokenWatch: TokenWatch
  releases: ReleaseStore
  events: EventStore
  intake: Intake
  apps: AppStore
  /** App environments, sealed with the key ring outside berth.db. */
  vault: EnvVault
  deployments: DeploymentStore
  /** Each app's memory, CPU and task ceilings (its cgroup), what the host can enforce, usage and OOM kills. */
  limits: AppLimits
  supervisor: Supervisor
  /** Slot state: which instance of each proxied app is live, which standby, their ports, the proxy's route. */
  instances: Instances
  /** The haproxy of each app with the proxy setting (zero-downtime deploys). */
  proxy: ProxyManager
  /** What deploys route through: the app's own haproxy and its hostnames on the edge. */
  front: FrontDoor
  /** The shared edge; null when BERTH_EDGE_HTTP is not set. */
  edge: Edge | null
  /** berth's answers on the edge (challenges, maintenance and 404 pages); null without an edge. */
  fallback: Fallback | null
  /** The certificates the edge serves, per hostname (custom uploads and ACME's). */
  certificates: CertificateStore
  /** ACME HTTP-01 answers, for the edge's plain-HTTP listener to serve. */
  challenges: Challenges
  /** ACME issuance and renewal; null without an edge that has both listeners (HTTP-01 needs the plain one). */
  acme: AcmeManager | null
  /** The edge's access lines, filed per app and counted for /metrics; null without an edge. */
  accessLog: AccessLog | null
  deployer: Deployer
  policy: CrashPolicy
  health: HealthMonitor
  sessions: SessionManager
  /** One expression on an app's running node (POST /v1/apps/{app}/rpc). */
  rpc: Rpc
  webhooks: Webhooks
  /** Aborted when the daemon gives up on in-flight work during shutdown. */
  shutdown: AbortController
  /** Synchronous for the caller; the access log's last writes finish on their own (await accessLog.close() to wait). */
  close(): void
}

/**
 * `isolated`: app users must traverse DATA and DATA/apps to reach their own gate (0751: o+x, no listing); each
 * app's own directory (berth:APP 0750, isolation/app-dirs.ts) is what keeps the others out.
 */
export async function ensureDataDir(paths: Paths, log: Logger, isolated = false): Promise<void> {
  await fs.mkdir(paths.dataDir, { recursive: true, mode: 0o750 })
  await secureDataDir(paths.dataDir, log, isolated)
  await fs.mkdir(paths.apps, { recursive: true, mode: 0o755 })
  await fs.chmod(paths.apps, isolated ? 0o751 : 0o755)
  await fs.mkdir(paths.uploads, { recursive: true, mode: 0o700 })
}

/**
 * The data directory is the only barrier between other local users and every release's cookie
 * (releases/COOKIE is 0444 inside a 0555 tree), so a directory made before berth (mkdir with umask 022,
 * an old StateDirectoryMode) must lose its group-write and world bits; mkdir's mode applies only on creation.
 */
async function secureDataDir(dir: string, log: Logger, isolated: boolean): Promise<void> {
  const mode = (await fs.stat(dir)).mode & 0o777
  const wanted = (mode & 0o750) | (isolated ? 0o001 : 0)
  if (mode === wanted || (!isolated && (mode & 0o027) === 0)) return
  try {
    await fs.chmod(dir, wanted)
  } catch (err) {
    throw problem('DATA_DIR_EXPOSED', `The data directory ${dir} is mode ${mode.toString(8)}, so other local users can read the releases' Erlang cookies, and berth cannot change it (${(err as NodeJS.ErrnoException).code}); run \`chmod ${wanted.toString(8)} ${dir}\` as its owner (or chown it to berth's user) and start berth again.`)
  }
  log.warn({ dir, was: mode.toString(8), now: wanted.toString(8) }, 'the data directory was open to other local users: changed its mode')
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
  const isolation = decideIsolation(config.isolation, undefined, paths.dataDir)
  await ensureDataDir(paths, log, isolation.mode === 'on')
  const db = openDatabase(paths.db, log)
  const tokens = new TokenStore(db)
  const tokenWatch = new TokenWatch(tokens, log)
  const releases = new ReleaseStore(db)
  const events = new EventStore(db, log)
  const appLog = new AppLog((app) => paths.log(app))
  events.subscribe((e) => appLog.write(e.app, e.line))
  let vault: EnvVault
  try {
    vault = openVault(config, db, log, { create: true })
  } catch (err) {
    db.close()
    throw err
  }
  // apps is made below; the closure runs at upload time.
  const intake = new Intake({ paths, releases, events, limits: config.limits, log, releaseNameOf: (app) => expectedReleaseName(app, apps.settings(app)) })
  const apps = new AppStore(db, events, { paths, log }, vault)
  // Owner of the locks this process takes: unique per process start, so a restarted agent sees old locks as stale.
  const deployments = new DeploymentStore(db, ownerId())
  // A row from before berth recorded kinds is detected from its directory (prepareDaemon fills them in).
  const kindOf = (app: string, id: string): ReleaseKind => {
    const r = releases.get(app, id)
    return r?.kind ?? detectKind(paths.release(app, id), releaseName(paths.release(app, id), app), r?.version ?? '')
  }
  // RLIMIT_NPROC caps a uid, so tasksMax falls back to it only where each app has a uid of its own.
  const limits = new AppLimits({ log: log.child({ component: 'limits' }), limitsOf: (app) => apps.settings(app).limits, perAppUid: () => isolation.mode === 'on' })
  const distPorts = new DistPorts(paths, config.distPorts, log)
  // Every process of an app's code starts through the launcher: as the app's uid when isolation is on.
  // The launcher puts each of the app's processes into the cgroups (or rlimits) limits.ts names.
  const launcher = new AppLauncher({ state: isolation, users: new AppUsers(paths, config.appUids, log), setpriv: SETPRIV, limits })
  const appDirs = new AppDirs({ paths, launcher, log })
  // An app that appears (its first upload, env or settings) gets its gate and its user at once, not at its
  // first start: until then its directory would be berth's group's only, or, made by a plain mkdir, everyone's.
  events.subscribe((e) => {
    if (!e.app || !launcher.isolated || !fsSync.existsSync(paths.app(e.app))) return
    try {
      appDirs.prepare(e.app)
    } catch (err) {
      log.error({ err, app: e.app }, "the app's directory could not be given to its user; its next start tries again")
    }
  })
  // The one owner of slot state (live and standby instances, their ports, the proxy's route): asked by all.
  const instances = new Instances({ db, paths, log, ports: config.instancePorts })
  const supervisor = new Supervisor({ paths, apps, events, log, epmdPort: config.epmdPort, kindOf, distPorts, instances, launcher, dirs: appDirs, oomKills: (app) => limits.oomKills(app) })
  const health = new HealthMonitor({ apps, deployments, events, supervisor, log })
  const proxy = new ProxyManager({ paths, events, log, haproxy: config.haproxy, routes: instances, launch: (cmd, args) => launcher.engine(cmd, args) })
  // Only with an edge: its port (edge/log-port) is what the edge's config sends the lines to.
  const accessLog = config.edge ? new AccessLog({ paths, log: log.child({ component: 'access-log' }) }) : null
  const certificates = new CertificateStore({ db, paths, events, log, sink: null, proxyOf: (app) => apps.settings(app).proxy, edgeHasHttps: !!config.edge?.https, renewFraction: config.edge?.acme.renewFraction })
  const challenges = new Challenges()
  const acme = config.edge?.https && config.edge.http ? new AcmeManager({ db, certs: certificates, challenges, paths, events, log, acme: config.edge.acme }) : null
  // The shared edge (BERTH_EDGE_HTTP): one haproxy for every app with proxy.hosts, and berth's own answers on it.
  // An app's hostnames joining the edge (its first deploy with them) is when their ACME certificates are due.
  const edge = config.edge ? new Edge({ paths, events, log, haproxy: config.haproxy, launch: (cmd, args) => launcher.engine(cmd, args), config: config.edge, routes: instances, logLines: accessLog ? () => accessLog.config() : undefined, onHosts: () => void acme?.sync(acmeHosts({ releases, apps, certificates })).catch((err: unknown) => log.error({ err }, 'ACME could not take the new hostnames')) }) : null
  const fallback = edge ? new Fallback({ paths, log, challenges, socket: edge.fallbackSocket, pausedFor: (app) => edge.pausedFor(app) }) : null
  // Each app's front door: its own haproxy and/or its hostnames on the shared edge.
  const front = new FrontDoor(proxy, edge)
  events.subscribe((e) => {
    if (e.action !== 'settings.update') return
    // New limits reach a running node at once when it is in its cgroup, else from its next start; a field the
    // host cannot enforce is logged here and answered as a warning by PUT settings.
    limits.ensure(e.app)
    const p = apps.settings(e.app).proxy
    // A hostname an app gives up loses its certificate with the change, not at some later deploy.
    certificates.retain(e.app, p?.hosts ?? []).catch((err: unknown) => log.error({ err, app: e.app }, 'the certificates of hostnames the app gave up could not be removed'))
    // Hostnames and edge settings of an app the edge routes apply at once (no restart of its node is
    // needed); turning the edge off for it waits for its next deploy, which also moves its node.
    if (edge?.serves(e.app) && p && p.hosts.length > 0) {
      edge.ensure(e.app, p, instances.routed(e.app)).catch((err: unknown) => log.error({ err, app: e.app }, 'the edge could not apply the new settings; they apply at the next deploy'))
    }
  })
  const deployer = new Deployer({ paths, releases, deployments, apps, events, supervisor, health, log, appDirs, stepPause: config.testStepPause, instances: supervisor, proxy: front })
  const policy = new CrashPolicy({ paths, apps, deployments, events, supervisor, deployer, log })
  const sessions = new SessionManager({
    db,
    paths,
    supervisor,
    apps,
    log,
    events,
    tokenWatch,
    maxPerApp: config.consoles.maxPerApp,
    idleMs: config.consoles.idleMs,
    retention: { maxRecordings: config.consoles.keepRecordings },
  })
  const rpc = new Rpc({ paths, supervisor, apps, events })
  const webhooks = new Webhooks(db, events, log, { backoffMs: config.webhookBackoffMs, timeoutMs: config.webhookTimeoutMs, maxPerApp: config.maxWebhooksPerApp, allowPrivate: config.webhookAllowPrivate })
  return {
    launcher,
    appDirs,
    webhooks,
    sessions,
    rpc,
    policy,
    health,
    apps,
    vault,
    deployments,
    limits,
    supervisor,
    instances,
    proxy,
    front,
    edge,
    fallback,
    certificates,
    challenges,
    acme,
    accessLog,
    deployer,
    config,
    log,
    paths,
    db,
    tokens,
    tokenWatch,
    releases,
    events,
    intake,
    shutdown: new AbortController(),
    close: () => {
      // The nodes keep running: a restarted agent re-adopts them.
      policy.close()
      acme?.close()
      tokenWatch.close()
      health.close()
      webhooks.close()
      supervisor.detach()
      // The proxies keep forwarding too: restarting berth never touches traffic.
      proxy.detach()
      edge?.detach()
      void fallback?.close()
      void accessLog?.close()
      vault.close()
      db.close()
    },
  }
}

/** The hostnames that should have an ACME certificate: those of apps whose proxy.tls is acme (AcmeManager.sync). */
export function acmeHosts(s: Pick<Services, 'releases' | 'apps' | 'certificates'>): { app: string; host: string }[] {
  return s.releases.apps().flatMap(({ name }) => (s.certificates.mode(name) === 'acme' ? (s.apps.settings(name).proxy?.hosts ?? []).map((host) => ({ app: name, host })) : []))
}

/**
 * A release directory without a row is a complete release (intake names it only once it is complete): record
 * it again. Automatic, because it only adds rows and is exactly what `berth import` does, while refusing to
 * start would leave the nodes unsupervised until someone ran that by hand.
 */
async function rebuildCatalogue(s: Services): Promise<void> {
  const before = s.releases.apps().reduce((n, a) => n + a.releases, 0)
  const result = await importReleases(s, 'berth')
  const imported = result.flatMap((a) => a.entries.filter((e) => e.outcome === 'imported').map((e) => `${a.app}/${e.entry}`))
  for (const a of result) {
    for (const e of a.entries.filter((x) => x.outcome === 'failed')) s.log.error({ app: a.app, entry: e.entry, why: e.note }, 'a directory under releases/ could not be re-imported; it was left as it is')
    if (a.settings === 'restored') s.log.warn({ app: a.app }, `the app had no settings in berth.db: restored them from apps/${a.app}/settings.json`)
  }
  if (before === 0 && imported.length > 0) {
    s.log.warn(
      { releases: imported, created: result.filter((a) => a.created).map((a) => a.app) },
      'berth.db held no releases while apps/ holds release directories (the database was lost or replaced): re-imported them from disk, with the app settings from apps/APP/settings.json. Tokens and environments were in the database only: set them again',
    )
  }
}

/** Start-up duties of the daemon (not of the CLI): clear debris, rebuild, recover, and make sure someone can log in. */
export async function prepareDaemon(s: Services): Promise<void> {
  // First: the edge's config names its port, so it must be known (and bound) before the edge starts.
  await s.accessLog?.start()
  await sweepDebris(s)
  await rebuildCatalogue(s)
  for (const { name } of s.releases.apps()) await s.apps.copySettingsIfMissing(name)
  // What the host offers, said once at start; each app's cgroup made now, so usage shows before its next start.
  const support = s.limits.detect()
  s.log.info({ via: support.via, why: support.reason }, 'app resource limits')
  for (const { name } of s.releases.apps()) s.limits.ensure(name)
  for (const r of s.releases.withoutKind()) s.releases.setKind(r.app, r.id, detectKind(s.paths.release(r.app, r.id), releaseName(s.paths.release(r.app, r.id), r.app), r.version))
  // Before any node or command runs: each app's directories as isolation wants them (a one-time chown pass
  // for an install from before it), and the start log says whether apps are isolated and why not.
  const iso = s.launcher.state
  s.log[iso.mode === 'unavailable' ? 'warn' : 'info']({ isolation: iso.mode }, `app isolation: ${iso.reason}`)
  for (const { name } of s.releases.apps()) {
    try {
      s.appDirs.prepare(name)
    } catch (err) {
      s.log.error({ err, app: name }, "the app's directories could not be given to its user; its next start tries again")
    }
  }
  s.rpc.recover()
  s.sessions.recover()
  s.webhooks.start()
  // The edge before the deployments are recovered: recovery routes each app's live instance through it.
  await s.fallback?.start()
  await s.edge?.start()
  const edge = s.edge
  // Every stored certificate into the running edge; without one, this only drops what no app routes any more.
  if (edge) await s.certificates.attach({ install: (host, file) => edge.install(host, file), remove: (host) => edge.uninstall(host, s.certificates.file(host)) })
  else await s.certificates.installAll()
  s.acme?.start()
  await s.deployer.recover()
  if (s.tokens.count() === 0) {
    const { token } = s.tokens.create({ name: 'initial-admin', scopes: ['admin'] })
    await fs.rm(s.paths.initialAdminToken, { force: true })
    await writeNewFile(s.paths.initialAdminToken, `${token}\n`, 0o600)
    s.events.record({ action: 'token.create', outcome: 'ok', actor: 'berth', detail: { name: 'initial-admin', scopes: ['admin'] } })
    s.log.warn({ file: s.paths.initialAdminToken }, 'no tokens existed: created an admin token and wrote it to this file (readable by its owner only); create your own with `berth token create` and revoke "initial-admin"')
  }
}
