// Routes about apps as a whole: list, status, settings, environment (names only on the way out), logs and
// audit events. Changes are audited by the domain (apps/store.ts), not here.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { listenerOf, parseListenAddress, settingsAddressCheck, type AddressClaim } from '../../apps/addresses.js'
import { allowsApp, hasScope } from '../../auth/tokens.js'
import { appEdgeView } from '../../edge/view.js'
import { problem } from '../../errors.js'
import { APP_NAME } from '../../paths.js'
import { currentReleaseIdSync } from '../../releases/current.js'
import { requireApp } from '../../releases/lookup.js'
import { withoutConsoleDetail } from '../../store/events.js'
import { followLog, LOG_CONTENT_TYPES, readLog, type LogQuery } from '../../supervision/logs.js'
import type { ProxyView } from '../../proxy/proxy.js'
import type { NodeStatus } from '../../supervision/supervisor.js'
import type { Services } from '../../services.js'
import type { RouteContext } from '../context.js'
import { actor, answerDeployment } from '../reply.js'

export default async function appRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services } = ctx
  const { releases, apps } = services
  /** PUT and PATCH of the environment create the app: it is set before the first upload. */
  const ensureApp = (name: string) => {
    if (!APP_NAME.test(name)) throw problem('INVALID_APP_NAME', `App name "${name}" must match ${APP_NAME.source}.`)
    releases.ensureApp(name)
  }

  /** ?restart=true after an environment change: restarts a running node and waits; true when a failure was answered. */
  const restartIfAsked = async (request: FastifyRequest<{ Querystring: { restart?: boolean } }>, reply: FastifyReply, name: string): Promise<boolean> => {
    if (!request.query.restart || !services.supervisor.isUp(name)) return false
    const d = await services.deployer.operate(name, 'restart', actor(request))
    await answerDeployment(services, request, reply, d, true)
    return reply.sent
  }

  ctx.route(app, 'listApps', async (request) => ({
    apps: releases.apps().filter((a) => allowsApp(request.token!, a.name)),
  }))

  ctx.route(app, 'getApp', async (request) => {
    const { app: name } = request.params
    requireApp(releases, name)
    const node = services.supervisor.status(name)
    return {
      name,
      current: currentReleaseIdSync(services.paths, name),
      node: { ...node, health: services.health.healthOf(name) },
      lastDeployment: services.deployments.lastRelease(name),
      proxy: proxyView(services, name, node),
      // Its hostnames on the shared edge, for every token that may read the app (GET /v1/edge is admin only).
      edge: appEdgeView(services.edge, name, services.apps.settings(name).proxy),
      limits: services.limits.view(name),
      // Which Unix user its processes run as: its own with isolation on, berth's otherwise (and why).
      runsAs: { isolation: services.launcher.state.mode, uid: services.launcher.uidOf(name) ?? process.getuid?.() ?? null },
    }
  })

  ctx.route(app, 'getSettings', async (request) => {
    requireApp(releases, request.params.app)
    return apps.settings(request.params.app)
  })

  ctx.route(app, 'putSettings', async (request) => {
    const { app: name } = request.params
    requireApp(releases, name)
    const patch = request.body as Record<string, unknown>
    // One address, one app: checked against the stored settings and the running haproxies of every app
    // (one turned off still holds its address until its app's next deploy or restart), and berth's own.
    const claims = (): AddressClaim[] => [...apps.proxyClaims(), ...runningProxies(services), ...edgeClaims(services)]
    const saved = apps.saveSettings(name, patch, actor(request), settingsAddressCheck(name, patch, { berth: listenerOf(app.server), claims, hostClaims: () => apps.hostClaims() }))
    // Answered once settings.json holds them too, so a database lost right after keeps them.
    const failed = await apps.settingsCopied(name)
    if (failed) {
      throw problem('SETTINGS_NOT_COPIED', `The settings of "${name}" are saved in berth.db and in effect, but apps/${name}/settings.json could not be written (${failed}), so a lost database would lose them. Fix the cause (disk space, permissions) and PUT them again.`, { settings: saved })
    }
    // Saved either way, but never silently ignored: a limit this host cannot enforce is said with why.
    const warnings = 'limits' in patch ? services.limits.ensure(name).notEnforced.map((n) => `limits.${n.field} is not enforced: ${n.reason}`) : []
    return warnings.length ? { ...saved, warnings } : saved
  })

  ctx.route(app, 'getEnv', async (request) => {
    requireApp(releases, request.params.app)
    return { names: apps.envNames(request.params.app) }
  })

  ctx.route(app, 'putEnv', async (request, reply) => {
    const { app: name } = request.params
    ensureApp(name)
    const names = apps.replaceEnv(name, request.body, actor(request))
    if (await restartIfAsked(request, reply, name)) return reply
    return { names }
  })

  ctx.route(app, 'patchEnv', async (request, reply) => {
    const { app: name } = request.params
    ensureApp(name)
    const answer = apps.mergeEnv(name, request.body, actor(request))
    if (await restartIfAsked(request, reply, name)) return reply
    return answer
  })

  ctx.route(app, 'getLogs', async (request, reply) => {
    const { app: name } = request.params
    requireApp(releases, name)
    const q = request.query
    const query: LogQuery = { app: name, source: q.source ?? 'console', format: q.format ?? 'text', lines: q.lines ?? 100 }
    // The console is the live instance's (its own directory with the proxy on); berth.log is the app's.
    const dir = query.source === 'console' ? services.supervisor.consoleLogDir(name) : services.paths.log(name)
    reply.type(LOG_CONTENT_TYPES[query.format])
    if (!q.follow) return readLog(dir, query)
    // A stream that outlives node restarts (it follows the files, not the process) until the client leaves,
    // berth shuts down, or the token is revoked or expires.
    // One of the token's and the app's stream slots (429 TOO_MANY_STREAMS when they are taken), until it ends.
    const release = ctx.streams.acquire(request.token!, name)
    const gone = new AbortController()
    gone.signal.addEventListener('abort', release, { once: true })
    reply.raw.once('close', () => gone.abort())
    let unhold: () => void
    try {
      unhold = services.tokenWatch.hold(request.token!, () => gone.abort())
    } catch (err) {
      release()
      throw err
    }
    request.raw.on('close', () => gone.abort())
    services.shutdown.signal.addEventListener('abort', () => gone.abort(), { once: true })
    gone.signal.addEventListener('abort', unhold, { once: true })
    // The console follower moves to the new live instance's directory when a proxied deploy switches.
    const stream = followLog(query.source === 'console' ? services.supervisor.consoleLogDirs(name) : dir, query, gone.signal)
    reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff')
    // Headers go out at once, so a client can tell "waiting for lines" from "server hung".
    reply.raw.once('pipe', () => reply.raw.flushHeaders())
    return reply.send(stream)
  })

  ctx.route(app, 'listEvents', async (request) => {
    requireApp(releases, request.params.app)
    const events = services.events.list(request.params.app, request.query.limit ?? 100)
    return { events: hasScope(request.token!, 'console') ? events : events.map(withoutConsoleDetail) }
  })
}

/** Where each app's haproxy runs now (it may differ from its settings until the next deploy or restart). */
function runningProxies(services: Services): AddressClaim[] {
  const out: AddressClaim[] = []
  for (const { name } of services.releases.apps()) {
    const s = services.proxy.status(name)
    if (s) out.push({ kind: 'proxy', app: name, address: parseListenAddress(s.listen), source: s.state === 'running' ? `its haproxy, pid ${s.pid}, runs there` : 'berth restarts its haproxy there' })
  }
  return out
}

/** The edge's listeners (BERTH_EDGE_HTTP/HTTPS): no app's own listener may take them. */
function edgeClaims(services: Services): AddressClaim[] {
  const e = services.config.edge
  return [e?.http, e?.https].filter((l): l is string => !!l).map((l) => ({ kind: 'edge' as const, address: parseListenAddress(l), source: 'BERTH_EDGE_HTTP/HTTPS' }))
}

/** The listener and the instances behind it; null for an app without the proxy setting and no proxy running. */
function proxyView(services: Services, name: string, node: NodeStatus): ProxyView | null {
  const status = services.proxy.status(name)
  const settings = services.apps.settings(name)
  if (!status && !settings.proxy) return null
  const liveInst = services.instances.live(name)
  const other = services.supervisor.standbyOf(name)
  const instance = (s: NonNullable<typeof other>) => ({ slot: s.slot, port: s.port, release: s.release, pid: s.pid, startedAt: s.startedAt })
  return {
    listen: status?.listen ?? settings.proxy?.listen ?? null,
    state: status?.state ?? 'down',
    pid: status?.pid ?? null,
    startedAt: status?.startedAt ?? null,
    restarts: status?.restarts ?? 0,
    lastExit: status?.lastExit ?? null,
    live: liveInst && services.supervisor.isUp(name) ? { slot: liveInst.slot, port: liveInst.port, release: node.release, pid: node.pid, startedAt: node.startedAt } : null,
    starting: other?.role === 'starting' ? instance(other) : null,
    draining: other?.role === 'draining' ? { ...instance(other), drainUntil: other.drainUntil!, remainingMs: Math.max(0, Date.parse(other.drainUntil!) - Date.now()) } : null,
  }
}
