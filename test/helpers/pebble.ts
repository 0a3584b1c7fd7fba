// A real ACME server for tests: pebble, with pebble-challtestsrv as its DNS (every name is 127.0.0.1), its own
// HTTPS certificate made by openssl, and HTTP-01 validated for real on `httpPort` (PEBBLE_VA_ALWAYS_VALID is
// never set). Also a small HTTP server answering challenges from a Challenges, as the edge's fallback does.

import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import type { Challenges } from '../../src/edge/challenges.js'
import { issue, makeCa, type TestCa } from './certs.js'
import { freePorts } from './ports.js'

export interface Pebble {
  /** The CA of pebble's HTTPS certificate (to start another pebble that the same client trusts). */
  httpsCa: TestCa
  /** The ACME directory URL. */
  directory: string
  /** The CA that signed pebble's own HTTPS certificate: BERTH_ACME_CA_FILE. */
  caFile: string
  /** Where pebble validates HTTP-01 (every name resolves to 127.0.0.1). */
  httpPort: number
  /** The root pebble issues under, PEM (it changes with every pebble start). */
  root(): Promise<string>
  output(): string
  stop(): Promise<void>
}

export interface PebbleOptions {
  /** PEBBLE_WFE_NONCEREJECT: percent of nonces refused as badNonce (pebble's default is 5). */
  nonceRejectPercent?: number
  /** certificateValidityPeriod, seconds (pebble's default is 5 years). */
  validitySeconds?: number
  /** The CA of pebble's own HTTPS certificate; default a new one. acme-client trusts one set of CAs per process. */
  httpsCa?: TestCa
}

/** GET over HTTPS trusting `ca` only. */
export function getTrusting(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 5000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy(new Error(`${url} timed out`)))
    req.on('error', reject)
  })
}

function launch(cmd: string, args: string[], env: Record<string, string>, cwd: string, out: { text: string }): ChildProcess {
  const child = spawn(cmd, args, { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout!.on('data', (d) => (out.text += d))
  child.stderr!.on('data', (d) => (out.text += d))
  return child
}

async function end(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
}

/** Starts pebble and its DNS in `dir` (the caller's temp dir); stop() ends both and waits for them. */
export async function startPebble(dir: string, opts: PebbleOptions = {}): Promise<Pebble> {
  const [listen, mgmt, dns, dnsMgmt, httpPort, tlsPort] = await freePorts(6)
  const ca = opts.httpsCa ?? makeCa(dir, 'pebble HTTPS test CA')
  const leaf = issue(ca, { names: ['localhost'], ips: ['127.0.0.1'] })
  const config = path.join(dir, 'pebble.json')
  fs.writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${listen}`,
        managementListenAddress: `127.0.0.1:${mgmt}`,
        certificate: leaf.certFile,
        privateKey: leaf.keyFile,
        httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(opts.validitySeconds ? { certificateValidityPeriod: opts.validitySeconds } : {}),
      },
    }),
  )
  const out = { text: '' }
  const dnsSrv = launch('pebble-challtestsrv', ['-defaultIPv6', '', '-defaultIPv4', '127.0.0.1', '-dns01', `127.0.0.1:${dns}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${dnsMgmt}`], {}, dir, out)
  // NOSLEEP: no random 0-15 s wait before each validation. The badNonce rate stays pebble's unless asked.
  // AUTHZREUSE 0: pebble would otherwise reuse half of the valid authorizations, and a renewal meant to fail
  // its validation could pass without one.
  const env: Record<string, string> = { PEBBLE_VA_NOSLEEP: '1', PEBBLE_AUTHZREUSE: '0' }
  if (opts.nonceRejectPercent !== undefined) env.PEBBLE_WFE_NONCEREJECT = String(opts.nonceRejectPercent)
  const pebble = launch('pebble', ['-config', config, '-dnsserver', `127.0.0.1:${dns}`], env, dir, out)
  const stop = async () => {
    await end(pebble)
    await end(dnsSrv)
  }
  const directory = `https://127.0.0.1:${listen}/dir`
  const deadline = Date.now() + 15_000
  for (;;) {
    const answer = await getTrusting(directory, ca.pem).catch(() => null)
    if (answer?.status === 200) break
    if (Date.now() > deadline || pebble.exitCode !== null || dnsSrv.exitCode !== null) {
      await stop()
      throw new Error(`pebble did not answer at ${directory}:\n${out.text}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    httpsCa: ca,
    directory,
    caFile: ca.certFile,
    httpPort,
    root: async () => (await getTrusting(`https://127.0.0.1:${mgmt}/roots/0`, ca.pem)).body,
    output: () => out.text,
    stop,
  }
}

export interface ChallengeServer {
  /** Challenge requests seen, by token (pebble's validations, counted). */
  hits: string[]
  /** Off: every challenge answers 404, as an edge that lost its route would. */
  answering: boolean
  close(): Promise<void>
}

/**
 * Answers /.well-known/acme-challenge/TOKEN from `challenges` on 127.0.0.1:port: the lookup the edge's
 * fallback HTTP server does, until the edge (another part of issue 25) is there to do it.
 */
export async function serveChallenges(challenges: Challenges, port: number): Promise<ChallengeServer> {
  const state: ChallengeServer = { hits: [], answering: true, close: async () => {} }
  const server = http.createServer((req, res) => {
    const m = /^\/\.well-known\/acme-challenge\/([^/?]+)$/.exec(req.url ?? '')
    if (m) state.hits.push(m[1]!)
    const answer = m && state.answering ? challenges.get(m[1]!) : undefined
    if (answer === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
      return
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(answer)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  state.close = () => new Promise((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })
  return state
}
