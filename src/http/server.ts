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

export interface RunningServer {
  app: FastifyInstance
  services: Services
  url: string
  close(): Promise<void>
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const services = await createServices(config, log)
  try {
    await prepareDaemon(services)
    const app = await buildApp(services, {
      loggerInstance: log,
      ...(config.tls ? { https: { cert: fs.readFileSync(config.tls.cert), key: fs.readFileSync(config.tls.key) } } : {}),
      // Bounded header size and keep-alive so idle sockets cannot pile up.
      routerOptions: { maxParamLength: 200 },
      keepAliveTimeout: 10_000,
    } as Parameters<typeof buildApp>[1])
    // Connection and header limits: uploads stream for minutes (no overall request timeout), but the headers
    // must arrive within 10 s, at most 64 are kept (Node refuses more than 16 KiB of them with 431), and
    // connections beyond maxConnections are dropped at accept.
    app.server.maxConnections = config.maxConnections
    app.server.headersTimeout = 10_000
    app.server.maxHeadersCount = 64
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
          services.close()
        }
        log.info('berth stopped')
      })()
      return closing
    }
    return { app, services, url, close }
  } catch (err) {
    services.close()
    throw err
  }
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
