// ACME issuance and renewal for the edge's hostnames, through acme-client (RFC 8555, no protocol of our own):
// the account key, HTTP-01 answers through Challenges, one order at a time, renewal at a fraction of the
// lifetime, and backoff with jitter plus an hourly cap per hostname, persisted so restarts never storm a CA.
// Only HTTP-01: TLS-ALPN-01 needs a responder that presents a challenge certificate during the handshake,
// which haproxy 2.6 cannot do for one ALPN protocol without a separate TLS server in front of it.

import fs from 'node:fs/promises'
import https from 'node:https'
import path from 'node:path'
import tls from 'node:tls'
import type { Logger } from 'pino'
import type { EdgeConfig } from '../config.js'
import { writeNewFile } from '../fsutil.js'
import type { Paths } from '../paths.js'
import type { Database } from '../store/db.js'
import type { EventStore } from '../store/events.js'
import type { Challenges } from './challenges.js'
import { eventFacts, type CertificateStore, type CertRow } from './certs.js'

type AcmeModule = typeof import('acme-client')
type AcmeClient = InstanceType<AcmeModule['Client']>

export interface AcmeOptions {
  /** How often due hostnames are looked for (renewals are due days ahead; new hostnames come through sync). */
  tickMs: number
  /** First retry delay after a failure, doubling per failure up to backoffMaxMs, with jitter. */
  backoffBaseMs: number
  backoffMaxMs: number
  /** Orders per hostname per hour at most, whatever the backoff says (Let's Encrypt allows 5 failed validations). */
  maxAttemptsPerHour: number
  /** acme-client's polling of pending challenges and orders. */
  pollMinMs: number
  pollMaxMs: number
  /** One ACME HTTP request at most this long. */
  requestTimeoutMs: number
  /** The jitter's randomness (a test fixes it). */
  random: () => number
}

export const DEFAULT_ACME: AcmeOptions = {
  tickMs: 60_000,
  backoffBaseMs: 5 * 60_000,
  backoffMaxMs: 12 * 3600_000,
  maxAttemptsPerHour: 3,
  pollMinMs: 1000,
  pollMaxMs: 15_000,
  requestTimeoutMs: 30_000,
  random: Math.random,
}

export interface AcmeDeps {
  db: Database
  certs: CertificateStore
  challenges: Challenges
  paths: Paths
  events: EventStore
  log: Logger
  acme: Pick<EdgeConfig['acme'], 'directory' | 'email' | 'caFile'>
  clock?: () => number
  options?: Partial<AcmeOptions>
}

const HOUR = 3600_000

export class AcmeManager {
  private readonly opts: AcmeOptions
  private readonly clock: () => number
  private client: Promise<AcmeClient> | null = null
  private timer: NodeJS.Timeout | null = null
  private running: Promise<void> | null = null
  private again = false
  private closed = false

  constructor(private readonly deps: AcmeDeps) {
    this.opts = { ...DEFAULT_ACME, ...deps.options }
    this.clock = deps.clock ?? Date.now
  }

  /** Looks for due hostnames every tickMs; the timer never keeps berth alive. */
  start(): void {
    if (this.closed || this.timer) return
    this.timer = setInterval(() => void this.tick(), this.opts.tickMs)
    this.timer.unref()
  }

  /** No new work after this; an order in flight finishes, but its result is dropped and nothing is written. */
  close(): void {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  /**
   * The hostnames that should have an ACME certificate (apps with proxy.tls acme), from the edge owner at
   * start and whenever routes change: each gets a row, and a pass issues what is missing. One certificate
   * per hostname: a hostname added to or dropped from an app never re-issues (or risks) another's, and a
   * failed validation of one name cannot block the others. Resolves when that pass is over.
   */
  sync(wanted: readonly { app: string; host: string }[]): Promise<void> {
    if (this.closed) return Promise.resolve()
    for (const w of wanted) this.deps.certs.want(w.app, w.host)
    return this.tick()
  }

  /** One pass over the due hostnames, one order at a time; a pass asked for during one runs right after it. */
  tick(): Promise<void> {
    if (this.closed) return Promise.resolve()
    if (this.running) {
      this.again = true
      return this.running
    }
    const run = async () => {
      do {
        this.again = false
        for (const r of this.due()) {
          if (this.closed) return
          await this.attempt(r)
        }
      } while (this.again && !this.closed)
    }
    // Never rejects: the timer does not await it, and a failure of one pass must not end berth.
    this.running = run()
      .catch((err: unknown) => this.deps.log.error({ err }, 'an ACME pass failed; the next one tries again'))
      .finally(() => (this.running = null))
    return this.running
  }

  /** The account's URL at the CA once registered (the same across restarts: the key is kept). */
  async accountUrl(): Promise<string> {
    const client = await this.acmeClient()
    await client.createAccount({ termsOfServiceAgreed: true, ...this.contact() })
    return client.getAccountUrl()
  }

  /** When the host may next be tried: its backoff, and the hourly cap counted from the attempts recorded. */
  nextAllowedAt(r: CertRow): number {
    const backoff = r.nextAttemptAt ? Date.parse(r.nextAttemptAt) : 0
    const since = new Date(this.clock() - HOUR).toISOString()
    const recent = this.deps.db.prepare('SELECT at FROM acme_attempts WHERE host = ? AND at > ? ORDER BY at').all(r.host, since) as { at: string }[]
    const capped = recent.length >= this.opts.maxAttemptsPerHour ? Date.parse(recent[recent.length - this.opts.maxAttemptsPerHour]!.at) + HOUR : 0
    return Math.max(backoff, capped)
  }

  /** The host is still the app's, the app still wants ACME, and the row is still there and ACME's. */
  private wanted(r: Pick<CertRow, 'app' | 'host'>): boolean {
    const row = this.deps.certs.row(r.host)
    return row !== null && row.app === r.app && row.source === 'acme' && this.deps.certs.mode(r.app) === 'acme' && this.deps.certs.routes(r.app, r.host)
  }

  private due(): CertRow[] {
    const now = this.clock()
    return this.deps.certs.rows().filter((r) => {
      if (!this.wanted(r)) return false
      if (now < this.nextAllowedAt(r)) return false
      const renewAt = this.deps.certs.renewalAt(r)
      return r.state === 'pending' || renewAt === null || now >= renewAt
    })
  }

  private async attempt(r: CertRow): Promise<void> {
    // The pass's list was read before the orders ahead of this one, which can take a while.
    if (!this.wanted(r)) return
    const renewal = r.state !== 'pending' && r.notAfter !== null
    const action = renewal ? 'certificate.renew' : 'certificate.issue'
    const log = this.deps.log.child({ app: r.app, host: r.host })
    const at = new Date(this.clock()).toISOString()
    // Recorded before the order, as failed until it succeeds: a crash halfway still counts against the cap.
    const attemptId = this.deps.db.prepare("INSERT INTO acme_attempts (host, at, outcome) VALUES (?, ?, 'failed')").run(r.host, at).lastInsertRowid
    this.deps.db.prepare('DELETE FROM acme_attempts WHERE at < ?').run(new Date(this.clock() - 24 * HOUR).toISOString())
    this.deps.certs.mark(r.host, { state: renewal ? 'renewing' : 'pending' })
    try {
      const { cert, key } = await this.order(r.host)
      // The settings may have changed during the order: a host given up (or moved to custom) keeps no ACME result.
      if (this.closed || !this.wanted(r)) return
      const facts = await this.deps.certs.storeIssued(r.app, r.host, cert, key)
      this.deps.db.prepare("UPDATE acme_attempts SET outcome = 'ok' WHERE rowid = ?").run(attemptId)
      this.deps.events.record({ app: r.app, actor: 'berth', action, outcome: 'ok', detail: { host: r.host, source: 'acme', ...eventFacts(facts) } })
      log.info({ notAfter: facts.notAfter, serial: facts.serial }, renewal ? 'renewed the certificate' : 'issued a certificate')
    } catch (err) {
      if (this.closed) return
      const failures = r.failures + 1
      const delay = Math.min(this.opts.backoffMaxMs, this.opts.backoffBaseMs * 2 ** (failures - 1))
      // Equal jitter: never sooner than half the delay, so that hosts failing together spread out but none storms.
      const next = new Date(this.clock() + delay / 2 + (this.opts.random() * delay) / 2).toISOString()
      const error = errorText(err)
      // The old certificate, if any, stays in its file and in the edge: a failed renewal serves it until notAfter.
      this.deps.certs.mark(r.host, { state: 'failed', lastError: error, failures, nextAttemptAt: next })
      this.deps.events.record({ app: r.app, actor: 'berth', action, outcome: 'failed', detail: { host: r.host, source: 'acme', error, failures, nextAttemptAt: next, notAfter: r.notAfter } })
      log.warn({ error, failures, nextAttemptAt: next }, renewal ? 'the certificate was not renewed; the current one is still served' : 'no certificate could be issued')
    }
  }

  /** One order for one hostname: a fresh ECDSA P-256 key and CSR, HTTP-01 through the edge's Challenges. */
  private async order(host: string): Promise<{ cert: string; key: string }> {
    const acme = await loadAcme()
    const client = await this.acmeClient()
    const [key, csr] = await acme.crypto.createCsr({ commonName: host, altNames: [host] }, await acme.crypto.createPrivateEcdsaKey('P-256'))
    const { challenges } = this.deps
    const cert = await client.auto({
      csr,
      ...(this.deps.acme.email ? { email: this.deps.acme.email } : {}),
      termsOfServiceAgreed: true,
      challengePriority: ['http-01'],
      // acme-client's self-check fetches http://HOST/ through public DNS, which a host behind NAT or a name
      // not yet pointed here fails for reasons the CA would not; the hourly cap bounds the cost instead.
      skipChallengeVerification: true,
      // challengePriority makes acme-client pick an http-01 challenge or give up: nothing else arrives here.
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => challenges.set(challenge.token, keyAuthorization),
      challengeRemoveFn: async (_authz, challenge) => challenges.delete(challenge.token),
    })
    return { cert, key: key.toString() }
  }

  private contact(): { contact?: string[] } {
    return this.deps.acme.email ? { contact: [`mailto:${this.deps.acme.email}`] } : {}
  }

  private acmeClient(): Promise<AcmeClient> {
    this.client ??= (async () => {
      const acme = await loadAcme()
      configureHttp(acme, this.deps.acme.caFile ? await fs.readFile(this.deps.acme.caFile, 'utf8') : null, this.opts.requestTimeoutMs)
      const accountKey = await this.accountKey(acme)
      return new acme.Client({ directoryUrl: this.deps.acme.directory, accountKey, backoffAttempts: 30, backoffMin: this.opts.pollMinMs, backoffMax: this.opts.pollMaxMs })
    })().catch((err: unknown) => {
      this.client = null
      throw err
    })
    return this.client
  }

  /** The account key, made once and kept (0600): a new key would be a new account, losing its rate-limit standing. */
  private async accountKey(acme: AcmeModule): Promise<Buffer> {
    const file = path.join(this.deps.paths.acme, 'account.key')
    await fs.mkdir(this.deps.paths.acme, { recursive: true, mode: 0o700 })
    const existing = await fs.readFile(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null
      throw err
    })
    if (existing) return existing
    const key = await acme.crypto.createPrivateEcdsaKey('P-256')
    await writeNewFile(file, key.toString(), 0o600)
    return key
  }
}

let loaded: Promise<AcmeModule> | null = null
/** acme-client (with axios and its ASN.1 stack) is loaded on the first order, not with every berth start. */
function loadAcme(): Promise<AcmeModule> {
  loaded ??= import('acme-client').then((m) => ((m as { default?: AcmeModule }).default ?? m) as AcmeModule)
  return loaded
}

/**
 * acme-client talks through one axios instance for the whole process, and exposes it for this (its README:
 * "acme.axios.defaults"). The extra CA is added to Node's roots, never in place of them, and verification
 * stays on; berth has one ACME configuration, so a process-wide setting is the right scope.
 */
function configureHttp(acme: AcmeModule, extraCa: string | null, timeoutMs: number): void {
  acme.axios.defaults.timeout = timeoutMs
  if (extraCa) acme.axios.defaults.httpsAgent = new https.Agent({ ca: [...tls.rootCertificates, extraCa], keepAlive: true })
}

function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.replace(/\s+/g, ' ').slice(0, 500)
}
