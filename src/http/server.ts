// Owns the listening daemon: logger, services, listen (HTTP or HTTPS), and the graceful shutdown that lets
// in-flight uploads and deployments finish within a grace period, then aborts them cleanly (staging removed,
// 503 sent, deployments recorded), and only then closes the database.

import fs from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { createServices, prepareDaemon, type Services } from '../services.js'
import { buildApp } from './app.js'
import { ConnectionGuard } from './connections.js'
import { HEADERS_KEPT, MAX_HEADER_BYTES } from './header-limits.js'

export interface RunningServer {
  app: FastifyInstance
  connections: ConnectionGuard
  services: Services
  url: string
  close(): Promise<void>
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const services = await createServices(config, log)
  try {
    await prepareDaemon(services)
    const { http } = config
    // Node checks headersTimeout and requestTimeout only every connectionsCheckingInterval (30 s by default),
    // which once made the documented 10 s headers timeout 17-30 s. A 408 comes within one interval after the
    // timeout: check twenty times per timeout, at least twice a second (a walk over the open connections).
    const checkEveryMs = Math.max(25, Math.min(500, Math.floor(http.headersTimeoutMs / 20)))
    // Receiving a whole request never takes longer than an upload may (intake ends those with a problem
    // first); Node's bare 408 is the backstop for every other body.
    const requestTimeout = config.limits.uploadDeadlineMs + 60_000
    const serverOptions = { connectionsCheckingInterval: checkEveryMs, headersTimeout: http.headersTimeoutMs, requestTimeout, maxHeaderSize: MAX_HEADER_BYTES }
    const app = await buildApp(services, {
      loggerInstance: log,
      ...(config.tls
        ? { https: { cert: fs.readFileSync(config.tls.cert), key: fs.readFileSync(config.tls.key), handshakeTimeout: http.headersTimeoutMs, ...serverOptions } }
        : { http: serverOptions }),
      routerOptions: { maxParamLength: 200 },
      keepAliveTimeout: 10_000,
      requestTimeout,
    } as Parameters<typeof buildApp>[1])
    // Headers must arrive within headersTimeoutMs and stay within 16 KiB and 100 headers (header-limits.ts);
    // uploads stream for as long as intake allows. Connections are capped per address and in all by the
    // guard, which makes room by closing idle ones; Node's own cap is only a backstop above it (a cap
    // reached there drops new connections at accept, /healthz's included).
    app.server.headersTimeout = http.headersTimeoutMs
    app.server.maxHeadersCount = HEADERS_KEPT
    const guard = new ConnectionGuard({ maxConnections: config.maxConnections, maxConnectionsPerAddress: http.maxConnectionsPerAddress })
    guard.attach(app.server)
    app.server.maxConnections = config.maxConnections + 64
    warnOnFewDescriptors(config, log)
    await app.listen({ host: config.host, port: config.port })
    const addr = app.server.address() as AddressInfo
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
    const url = `${config.tls ? 'https' : 'http'}://${host}:${addr.port}`
    log.info({ url, dataDir: config.dataDir }, 'berth listening')
    let closing: Promise<void> | null = null
    const close = () => {
      closing ??= (async () => {
        const inFlight = services.intake.inFlight
        if (inFlight > 0) log.info({ uploads: inFlight, graceMs: config.shutdownGraceMs }, 'waiting for in-flight uploads')
        const abort = setTimeout(() => services.shutdown.abort(), config.shutdownGraceMs)
        try {
          // Consoles end with the agent (the nodes do not): their ptys are berth's children.
          await services.sessions.closeAll('berth is shutting down')
          // Both at once: a ?wait=true request is only answered when its deployment has ended.
          await Promise.all([app.close(), services.deployer.shutdown(config.shutdownGraceMs)])
        } finally {
          clearTimeout(abort)
          // Its queued lines are written before berth exits.
          await services.accessLog?.close()
          services.close()
        }
        log.info('berth stopped')
      })()
      return closing
    }
    return { app, connections: guard, services, url, close }
  } catch (err) {
    services.close()
    throw err
  }
}

/**
 * Each connection is a descriptor, each stream one or two more (the log file it follows, a console's pty),
 * and the app nodes' pipes and logs need some: a soft limit below that budget would make accept() fail
 * before any cap of berth's is reached. Node raises the soft limit to the hard one at start; under systemd
 * the unit sets both (LimitNOFILE=65536).
 */
function warnOnFewDescriptors(config: Config, log: Logger): void {
  let soft = Infinity
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))
    if (m && m[1] !== 'unlimited') soft = Number(m[1])
  } catch {
    return
  }
  const needed = config.maxConnections + 64 + 2 * config.http.maxStreams + 256
  if (soft < needed) log.warn({ openFilesLimit: soft, needed }, 'the open files limit is below what BERTH_MAX_CONNECTIONS and BERTH_MAX_STREAMS can use; raise it (LimitNOFILE=) or lower them')
}

/** Runs until SIGTERM/SIGINT; a second signal exits at once. */
export async function runDaemon(config: Config, log: Logger): Promise<void> {
  const server = await startServer(config, log)
  await new Promise<void>((resolve) => {
    let signalled = false
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        log.warn({ signal }, 'second signal: exiting now')
        process.exit(1)
      }
      signalled = true
      log.info({ signal }, 'shutting down')
      server.close().then(resolve, (err) => {
        log.error({ err }, 'shutdown failed')
        resolve()
      })
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  })
  log.flush?.()
}
