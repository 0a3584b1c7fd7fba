// The certificates the edge serves, one per hostname: their files (edge/certs/HOST.pem, 0600), their rows
// (edge_certificates), custom uploads, loading them into the running edge, and dropping those of hostnames
// an app gave up. ACME issuance (edge/acme.ts) stores what it gets through here, so there is one owner.

import fs from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'
import { tlsMode, type ProxySettings, type TlsMode } from '../apps/proxy-settings.js'
import { problem } from '../errors.js'
import { replaceFile } from '../fsutil.js'
import type { Paths } from '../paths.js'
import type { Database } from '../store/db.js'
import type { EventStore } from '../store/events.js'
import { checkBundle, type CertFacts } from './cert-check.js'
import type { CertificateSink } from './types.js'

export type CertSource = 'acme' | 'custom'
export type CertState = 'pending' | 'valid' | 'renewing' | 'failed'

/** A host's certificate as the API lists it (openapi.yaml Certificate). */
export interface CertificateView {
  host: string
  /** Where its certificate comes from; with none yet, where it will (null: proxy.tls is off). */
  source: CertSource | null
  /** missing: no certificate and none coming (custom, or tls off); expired: past notAfter, still served. */
  state: CertState | 'missing' | 'expired'
  notBefore: string | null
  notAfter: string | null
  issuer: string | null
  names: string[]
  lastError: string | null
  failures: number
  /** ACME: when berth next tries to issue or renew (its backoff included); null for custom certificates. */
  nextRenewalAt: string | null
}

/** A row of edge_certificates. */
export interface CertRow {
  host: string
  app: string
  source: CertSource
  state: CertState
  notBefore: string | null
  notAfter: string | null
  issuer: string | null
  subject: string | null
  sans: string[]
  serial: string | null
  fingerprint: string | null
  lastError: string | null
  failures: number
  nextAttemptAt: string | null
  updatedAt: string
}

export interface CertificateStoreDeps {
  db: Database
  paths: Paths
  events: EventStore
  log: Logger
  /** The running edge; null until the edge owner attaches it (or on a host without an edge). */
  sink: CertificateSink | null
  /** The app's proxy setting now (null: none), read at every call so that no copy goes stale. */
  proxyOf(app: string): ProxySettings | null
  /** The edge terminates TLS (BERTH_EDGE_HTTPS is set): what proxy.tls null means. */
  edgeHasHttps: boolean
  /** When an ACME certificate is renewed, as a fraction of its lifetime (Let's Encrypt advises 2/3). */
  renewFraction?: number
  clock?: () => number
}

const SELECT = `SELECT host, app, source, state, not_before AS notBefore, not_after AS notAfter, issuer, subject, sans, serial,
  fingerprint, last_error AS lastError, failures, next_attempt_at AS nextAttemptAt, updated_at AS updatedAt FROM edge_certificates`

type RawRow = Omit<CertRow, 'sans'> & { sans: string | null }
const fromRaw = (r: RawRow): CertRow => ({ ...r, sans: r.sans ? (JSON.parse(r.sans) as string[]) : [] })

export class CertificateStore {
  private sink: CertificateSink | null
  readonly renewFraction: number
  private readonly clock: () => number
  /** Writes of files and rows one at a time, so an upload and a renewal of one host never interleave. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(private readonly deps: CertificateStoreDeps) {
    this.sink = deps.sink
    this.renewFraction = deps.renewFraction ?? 2 / 3
    this.clock = deps.clock ?? Date.now
  }

  /** The edge owner hands the running edge over once it runs; what is stored is loaded into it then. */
  async attach(sink: CertificateSink): Promise<void> {
    this.sink = sink
    await this.installAll()
  }

  file(host: string): string {
    // Hostnames are normalized (a-z, 0-9, '-', '.') before they get here, so the join cannot escape.
    return path.join(this.deps.paths.edgeCerts, `${host}.pem`)
  }

  row(host: string): CertRow | null {
    const r = this.deps.db.prepare(`${SELECT} WHERE host = ?`).get(host) as RawRow | undefined
    return r ? fromRaw(r) : null
  }

  rows(app?: string): CertRow[] {
    const raw = (app === undefined ? this.deps.db.prepare(`${SELECT} ORDER BY host`).all() : this.deps.db.prepare(`${SELECT} WHERE app = ? ORDER BY host`).all(app)) as RawRow[]
    return raw.map(fromRaw)
  }

  mode(app: string): TlsMode {
    const p = this.deps.proxyOf(app)
    return p ? tlsMode(p, this.deps.edgeHasHttps) : 'off'
  }

  /** When an ACME certificate is due for renewal: renewFraction of the way from notBefore to notAfter. */
  renewalAt(r: Pick<CertRow, 'notBefore' | 'notAfter'>): number | null {
    if (!r.notBefore || !r.notAfter) return null
    const from = Date.parse(r.notBefore)
    return from + (Date.parse(r.notAfter) - from) * this.renewFraction
  }

  /** Per hostname of the app's proxy.hosts, its certificate, including hostnames that have none yet. */
  list(app: string): CertificateView[] {
    const hosts = this.deps.proxyOf(app)?.hosts ?? []
    const mode = this.mode(app)
    const rows = new Map(this.rows(app).map((r) => [r.host, r]))
    return hosts.map((host) => {
      const r = rows.get(host)
      if (!r) return { host, source: mode === 'off' ? null : mode, state: mode === 'acme' ? 'pending' : 'missing', notBefore: null, notAfter: null, issuer: null, names: [], lastError: null, failures: 0, nextRenewalAt: null }
      return this.view(r)
    })
  }

  view(r: CertRow): CertificateView {
    const now = this.clock()
    const expired = r.notAfter !== null && Date.parse(r.notAfter) < now
    let nextRenewalAt: string | null = null
    if (r.source === 'acme') {
      const due = Math.max(this.renewalAt(r) ?? now, r.nextAttemptAt ? Date.parse(r.nextAttemptAt) : 0)
      nextRenewalAt = new Date(due).toISOString()
    }
    return { host: r.host, source: r.source, state: expired ? 'expired' : r.state, notBefore: r.notBefore, notAfter: r.notAfter, issuer: r.issuer, names: r.sans, lastError: r.lastError, failures: r.failures, nextRenewalAt }
  }

  /**
   * Installs a custom certificate for one of the app's hostnames. Refused unless proxy.tls is "custom": with
   * "acme" berth would replace it at the next renewal, and with "off" nothing would serve it, so either way
   * the operator's intent is unclear and a 409 that says which setting to change is better than a surprise.
   */
  async putCustom(app: string, host: string, certPem: string, keyPem: string, actor: string | null): Promise<CertificateView> {
    this.requireRouted(app, host)
    const mode = this.mode(app)
    if (mode !== 'custom') {
      throw problem('TLS_MODE_MISMATCH', `App "${app}" has proxy.tls ${JSON.stringify(mode)}${this.deps.proxyOf(app)?.tls === null ? ' (the default)' : ''}; a custom certificate is served only with proxy.tls "custom". Set it first (berth settings ${app} set proxy.tls=custom); the certificate served now stays until the new one is in.`, { tls: mode })
    }
    const checked = checkBundle(certPem, keyPem, host, this.clock())
    return this.serialized(async () => {
      await this.store(app, host, 'custom', checked.pem, checked.facts)
      this.deps.events.record({ app, actor, action: 'certificate.install', outcome: 'ok', detail: { host, source: 'custom', ...eventFacts(checked.facts) } })
      return this.view(this.row(host)!)
    })
  }

  /** Removes a custom certificate; an ACME one is berth's to manage (switch proxy.tls to change it). */
  async deleteCustom(app: string, host: string, actor: string | null): Promise<void> {
    const r = this.row(host)
    if (!r || r.app !== app || r.source !== 'custom') throw problem('CERT_NOT_FOUND', `App "${app}" has no custom certificate for ${host}${r?.app === app ? ` (its certificate comes from ${r.source})` : ''}.`, { host })
    await this.serialized(() => this.drop(r, actor))
  }

  /**
   * Stores an issued or uploaded certificate: the file first (atomically, so the edge or a restart reads the
   * old one or the new one), then the edge loads it, then the row. If the edge refuses it, the old file comes
   * back and the row stays, so what is recorded is what is served.
   */
  private async store(app: string, host: string, source: CertSource, pem: string, facts: CertFacts): Promise<void> {
    const dir = this.deps.paths.edgeCerts
    await fs.mkdir(dir, { recursive: true, mode: 0o700 })
    await fs.chmod(dir, 0o700)
    const file = this.file(host)
    const before = await fs.readFile(file, 'utf8').catch(() => null)
    await replaceFile(file, pem, 0o600)
    try {
      await this.sink?.install(host, file)
    } catch (err) {
      if (before === null) await fs.rm(file, { force: true })
      else await replaceFile(file, before, 0o600)
      throw err
    }
    const at = new Date(this.clock()).toISOString()
    this.deps.db
      .prepare(
        `INSERT INTO edge_certificates (host, app, source, state, not_before, not_after, issuer, subject, sans, serial, fingerprint, last_error, failures, next_attempt_at, updated_at)
         VALUES (?, ?, ?, 'valid', ?, ?, ?, ?, ?, ?, ?, NULL, 0, NULL, ?)
         ON CONFLICT (host) DO UPDATE SET app = excluded.app, source = excluded.source, state = 'valid', not_before = excluded.not_before,
           not_after = excluded.not_after, issuer = excluded.issuer, subject = excluded.subject, sans = excluded.sans, serial = excluded.serial,
           fingerprint = excluded.fingerprint, last_error = NULL, failures = 0, next_attempt_at = NULL, updated_at = excluded.updated_at`,
      )
      .run(host, app, source, facts.notBefore, facts.notAfter, facts.issuer, facts.subject, JSON.stringify(facts.sans), facts.serial, facts.fingerprint, at)
  }

  /** What ACME got for a host: checked like an upload (a CA's bad answer must not reach the edge), then stored. */
  async storeIssued(app: string, host: string, chainPem: string, keyPem: string): Promise<CertFacts> {
    const checked = checkBundle(chainPem, keyPem, host, this.clock())
    await this.serialized(() => this.store(app, host, 'acme', checked.pem, checked.facts))
    return checked.facts
  }

  /**
   * A row for a host ACME should get a certificate for (pending). A custom certificate stays served until
   * ACME's replaces it, but is no longer renewed on its dates: the switch (or a move to another app, whose
   * owner then gets its own) makes the host due at once.
   */
  want(app: string, host: string): CertRow {
    const at = new Date(this.clock()).toISOString()
    this.deps.db
      .prepare(
        `INSERT INTO edge_certificates (host, app, source, state, updated_at) VALUES (?, ?, 'acme', 'pending', ?)
         ON CONFLICT (host) DO UPDATE SET app = excluded.app, source = 'acme', state = 'pending', failures = 0, next_attempt_at = NULL,
           last_error = NULL, updated_at = excluded.updated_at
         WHERE edge_certificates.source <> 'acme' OR edge_certificates.app <> excluded.app`,
      )
      .run(host, app, at)
    return this.row(host)!
  }

  /** ACME's bookkeeping of one host: its state, last error, failures and backoff. */
  mark(host: string, patch: { state: CertState; lastError?: string | null; failures?: number; nextAttemptAt?: string | null }): void {
    const r = this.row(host)
    if (!r) return
    this.deps.db
      .prepare('UPDATE edge_certificates SET state = ?, last_error = ?, failures = ?, next_attempt_at = ?, updated_at = ? WHERE host = ?')
      .run(patch.state, patch.lastError === undefined ? r.lastError : patch.lastError, patch.failures ?? r.failures, patch.nextAttemptAt === undefined ? r.nextAttemptAt : patch.nextAttemptAt, new Date(this.clock()).toISOString(), host)
  }

  /** Loads every stored certificate into the edge (berth's start, or the edge attached), first dropping those of hostnames no app routes any more. */
  async installAll(): Promise<number> {
    for (const app of new Set(this.rows().map((r) => r.app))) await this.retain(app, this.deps.proxyOf(app)?.hosts ?? [])
    if (!this.sink) return 0
    let n = 0
    for (const r of this.rows()) {
      if (!r.notAfter) continue
      try {
        await this.sink.install(r.host, this.file(r.host))
        n++
      } catch (err) {
        // One unreadable file must not keep the other hosts from their certificates.
        this.deps.log.error({ err, host: r.host, app: r.app }, 'the edge did not load a stored certificate')
      }
    }
    return n
  }

  /** Drops the certificates of the app's hostnames that are not in `hosts` (the app gave them up). */
  async retain(app: string, hosts: readonly string[]): Promise<void> {
    const gone = this.rows(app).filter((r) => !hosts.includes(r.host))
    for (const r of gone) await this.serialized(() => this.drop(r, 'berth'))
  }

  private async drop(r: CertRow, actor: string | null): Promise<void> {
    await this.sink?.remove(r.host)
    await fs.rm(this.file(r.host), { force: true })
    this.deps.db.prepare('DELETE FROM edge_certificates WHERE host = ?').run(r.host)
    this.deps.db.prepare('DELETE FROM acme_attempts WHERE host = ?').run(r.host)
    this.deps.events.record({ app: r.app, actor, action: 'certificate.remove', outcome: 'ok', detail: { host: r.host, source: r.source } })
  }

  /** The app routes the hostname now (it is in its proxy.hosts). */
  routes(app: string, host: string): boolean {
    return (this.deps.proxyOf(app)?.hosts ?? []).includes(host)
  }

  private requireRouted(app: string, host: string): void {
    const hosts = this.deps.proxyOf(app)?.hosts ?? []
    // 409, not 404: the request names a real app and a well-formed hostname, and the fix is a setting.
    if (!hosts.includes(host)) throw problem('HOST_NOT_ROUTED', `${host} is not one of the proxy.hosts of app "${app}" (${hosts.length ? hosts.join(', ') : 'it has none'}); add it there first.`, { host })
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work)
    this.queue = next.catch(() => {})
    return next
  }
}

/** The leaf's facts as events carry them (no key material, nothing but what `openssl x509 -text` shows anyone). */
export function eventFacts(f: CertFacts): Record<string, unknown> {
  return { notAfter: f.notAfter, issuer: f.issuer, serial: f.serial, fingerprint: f.fingerprint }
}
