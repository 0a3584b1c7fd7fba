// The single configuration object: read from environment and `berth serve` flags, validated once at start.
// Nothing else in berth reads process.env; every path here is absolute.

import path from 'node:path'

export interface Limits {
  /** Largest request body accepted for an upload, counted while streaming. */
  maxUploadBytes: number
  /** Largest total size of the files in one unpacked release. */
  maxUnpackedBytes: number
  /** Most entries (files, directories, links) in one release. */
  maxFiles: number
  /** Deepest path (in components) inside a release. */
  maxPathDepth: number
  /** Largest decompressed/compressed ratio, checked once `ratioGraceBytes` have been decompressed. */
  maxGzipRatio: number
  ratioGraceBytes: number
  /** Time allowed between two chunks of an upload before it is abandoned. */
  uploadIdleMs: number
  /** Uploads handled at once; more get 503 with Retry-After. */
  maxConcurrentUploads: number
}

export interface Config {
  dataDir: string
  host: string
  port: number
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  /** Graceful shutdown: how long in-flight uploads get to finish before they are aborted. */
  shutdownGraceMs: number
  tls: { cert: string; key: string } | null
  /** ERL_EPMD_PORT for every node berth runs; epmd listens on loopback only. */
  epmdPort: number
  webhookBackoffMs: number
  /** One webhook delivery attempt at most this long (connect to status line). */
  webhookTimeoutMs: number
  /** Webhooks per app (and for every app) at most. */
  maxWebhooksPerApp: number
  /** Deliver webhooks to loopback, link-local and private addresses too (off: refused, see webhooks/targets.ts). */
  webhookAllowPrivate: boolean
  /** Open client connections at most; more are refused by the kernel-level accept limit of Node. */
  maxConnections: number
  /** Failed authentications per client address and minute before requests from it get 429. */
  authFailuresPerMinute: number
  consoles: {
    /** berth's own origins (BERTH_PUBLIC_URL); empty: those of the address a client connected to. */
    publicOrigins: string[]
    /** Other page origins that may open consoles. */
    allowedOrigins: string[]
    idleMs: number
    maxPerApp: number
    keepRecordings: number
  }
  /** The haproxy executable that fronts apps with the proxy setting on (zero-downtime deploys). */
  haproxy: string
  /** Test-only: pause this long when a deployment step starts, so a test can kill the agent inside it. */
  testStepPause: { step: string; ms: number } | null
  limits: Limits
}

type Source = Record<string, string | undefined>

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** Each option: its env name, flag name, and how to parse it. Listed once so `--help` and validation agree. */
export const OPTIONS = [
  { env: 'BERTH_DATA_DIR', flag: 'data-dir', help: 'data directory (default ./var)' },
  { env: 'BERTH_LISTEN', flag: 'listen', help: 'address to listen on, HOST:PORT (default 127.0.0.1:4100)' },
  { env: 'BERTH_LOG_LEVEL', flag: 'log-level', help: `log level: ${LOG_LEVELS.join(', ')} (default info)` },
  { env: 'BERTH_TLS_CERT', flag: 'tls-cert', help: 'PEM certificate file; serve HTTPS' },
  { env: 'BERTH_TLS_KEY', flag: 'tls-key', help: 'PEM private key file for --tls-cert' },
  { env: 'BERTH_MAX_UPLOAD_BYTES', flag: 'max-upload-bytes', help: 'largest upload body (default 2 GiB)' },
  { env: 'BERTH_MAX_UNPACKED_BYTES', flag: 'max-unpacked-bytes', help: 'largest unpacked release (default 4 GiB)' },
  { env: 'BERTH_MAX_FILES', flag: 'max-files', help: 'most entries in a release (default 100000)' },
  { env: 'BERTH_MAX_PATH_DEPTH', flag: 'max-path-depth', help: 'deepest path in a release (default 32)' },
  { env: 'BERTH_MAX_GZIP_RATIO', flag: 'max-gzip-ratio', help: 'largest expansion ratio of the gzip stream (default 100)' },
  { env: 'BERTH_UPLOAD_IDLE_MS', flag: 'upload-idle-ms', help: 'abandon an upload idle this long (default 30000)' },
  { env: 'BERTH_MAX_CONCURRENT_UPLOADS', flag: 'max-concurrent-uploads', help: 'uploads at once (default 4)' },
  { env: 'BERTH_SHUTDOWN_GRACE_MS', flag: 'shutdown-grace-ms', help: 'time in-flight uploads get on shutdown (default 10000)' },
  { env: 'BERTH_EPMD_PORT', flag: 'epmd-port', help: 'epmd port of the nodes berth runs (default 4369)' },
  { env: 'BERTH_PUBLIC_URL', flag: 'public-url', help: "URL(s) operators open berth at, comma separated (default: the listen address); a console page's Origin must match" },
  { env: 'BERTH_ALLOWED_ORIGINS', flag: 'allowed-origins', help: 'other page origins that may open consoles, comma separated' },
  { env: 'BERTH_CONSOLE_IDLE_MS', flag: 'console-idle-ms', help: 'close console sessions idle this long (default 900000)' },
  { env: 'BERTH_MAX_SESSIONS_PER_APP', flag: 'max-sessions-per-app', help: 'concurrent console sessions per app (default 5)' },
  { env: 'BERTH_KEEP_RECORDINGS', flag: 'keep-recordings', help: 'console recordings kept per app (default 100)' },
  { env: 'BERTH_ALLOW_INSECURE_LISTEN', flag: 'allow-insecure-listen', help: 'set to 1 to listen on a non-loopback address without TLS' },
  { env: 'BERTH_MAX_CONNECTIONS', flag: 'max-connections', help: 'open client connections at most (default 512)' },
  { env: 'BERTH_WEBHOOK_BACKOFF_MS', flag: 'webhook-backoff-ms', help: 'first retry delay of webhook deliveries, doubling (default 1000)' },
  { env: 'BERTH_WEBHOOK_TIMEOUT_MS', flag: 'webhook-timeout-ms', help: 'one webhook delivery attempt at most this long (default 10000)' },
  { env: 'BERTH_MAX_WEBHOOKS_PER_APP', flag: 'max-webhooks-per-app', help: 'webhooks per app, and for every app (default 20)' },
  { env: 'BERTH_WEBHOOK_ALLOW_PRIVATE', flag: 'webhook-allow-private', help: 'set to 1 to deliver webhooks to loopback, link-local and private addresses' },
  { env: 'BERTH_AUTH_FAILURES_PER_MINUTE', flag: 'auth-failures-per-minute', help: 'failed authentications per client address before 429 (default 30)' },
  { env: 'BERTH_HAPROXY', flag: 'haproxy', help: 'haproxy executable for apps with the proxy setting (default /usr/sbin/haproxy)' },
] as const

export class ConfigError extends Error {
  override name = 'ConfigError'
}

function int(name: string, raw: string | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (raw === undefined || raw === '') return fallback
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got "${raw}"`)
  const n = Number(raw)
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`)
  return n
}

export function parseListen(raw: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(raw)
  if (!m) throw new ConfigError(`BERTH_LISTEN must be HOST:PORT (e.g. 127.0.0.1:4100), got "${raw}"`)
  const port = Number(m[3])
  if (port > 65535) throw new ConfigError(`BERTH_LISTEN port must be at most 65535, got ${port}`)
  return { host: (m[1] ?? m[2])!, port }
}

/** Comma separated http(s) URLs (or origins) to their origins, lower case and without default ports. */
function parseOrigins(name: string, raw: string | undefined): string[] {
  const out: string[] = []
  for (const item of (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    let u: URL | null = null
    try {
      u = new URL(item)
    } catch {
      // reported below
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new ConfigError(`${name} must list http:// or https:// URLs such as https://berth.example.com, got "${item}"`)
    out.push(u.origin)
  }
  return [...new Set(out)]
}

function flagOn(name: string, raw: string | undefined): boolean {
  if (raw === undefined || raw === '' || raw === '0' || raw === 'false') return false
  if (raw === '1' || raw === 'true') return true
  throw new ConfigError(`${name} must be 1 or 0, got "${raw}"`)
}

function parseStepPause(raw: string | undefined): Config['testStepPause'] {
  if (!raw) return null
  const m = /^([a-z_]+):(\d+)$/.exec(raw)
  if (!m) throw new ConfigError(`BERTH_TEST_STEP_PAUSE must be STEP:MS, got "${raw}"`)
  return { step: m[1]!, ms: Number(m[2]) }
}

/**
 * Builds the config from environment variables overlaid by flags (flags win), relative to `cwd`.
 * Throws ConfigError with a sentence naming the bad setting.
 */
export function loadConfig(env: Source, flags: Source = {}, cwd = process.cwd()): Config {
  // By variable name, so the list above can grow in any order.
  const get = (name: (typeof OPTIONS)[number]['env']): string | undefined => {
    const o = OPTIONS.find((x) => x.env === name)!
    return flags[o.flag] ?? env[o.env]
  }
  const num = (name: (typeof OPTIONS)[number]['env'], fallback: number, min: number, max?: number) => int(name, get(name), fallback, min, max)
  const dataDir = path.resolve(cwd, get('BERTH_DATA_DIR') || './var')
  const { host, port } = parseListen(get('BERTH_LISTEN') || '127.0.0.1:4100')
  const logLevel = (get('BERTH_LOG_LEVEL') || 'info') as Config['logLevel']
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`BERTH_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`)
  const cert = get('BERTH_TLS_CERT')
  const key = get('BERTH_TLS_KEY')
  if (Boolean(cert) !== Boolean(key)) throw new ConfigError('BERTH_TLS_CERT and BERTH_TLS_KEY must be given together')
  // Tokens travel in headers: in clear text they may only cross the loopback interface.
  const loopback = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host)
  const insecure = get('BERTH_ALLOW_INSECURE_LISTEN')
  if (!loopback && !(cert && key) && insecure !== '1' && insecure !== 'true') {
    throw new ConfigError(`refusing to listen on ${host} without TLS: tokens would cross the network in clear text. Set BERTH_TLS_CERT and BERTH_TLS_KEY, or BERTH_ALLOW_INSECURE_LISTEN=1 behind a TLS-terminating proxy`)
  }
  const GiB = 1024 ** 3
  const limits: Limits = {
    maxUploadBytes: num('BERTH_MAX_UPLOAD_BYTES', 2 * GiB, 1024),
    maxUnpackedBytes: num('BERTH_MAX_UNPACKED_BYTES', 4 * GiB, 1024),
    maxFiles: num('BERTH_MAX_FILES', 100_000, 1),
    maxPathDepth: num('BERTH_MAX_PATH_DEPTH', 32, 2, 1024),
    maxGzipRatio: num('BERTH_MAX_GZIP_RATIO', 100, 2),
    ratioGraceBytes: 16 * 1024 * 1024,
    uploadIdleMs: num('BERTH_UPLOAD_IDLE_MS', 30_000, 100),
    maxConcurrentUploads: num('BERTH_MAX_CONCURRENT_UPLOADS', 4, 1, 1000),
  }
  return {
    dataDir,
    host,
    port,
    logLevel,
    shutdownGraceMs: num('BERTH_SHUTDOWN_GRACE_MS', 10_000, 0),
    epmdPort: num('BERTH_EPMD_PORT', 4369, 1, 65535),
    testStepPause: parseStepPause(env.BERTH_TEST_STEP_PAUSE),
    haproxy: path.resolve(cwd, get('BERTH_HAPROXY') || '/usr/sbin/haproxy'),
    maxConnections: num('BERTH_MAX_CONNECTIONS', 512, 1, 1_000_000),
    webhookBackoffMs: num('BERTH_WEBHOOK_BACKOFF_MS', 1000, 10, 3600_000),
    webhookTimeoutMs: num('BERTH_WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
    maxWebhooksPerApp: num('BERTH_MAX_WEBHOOKS_PER_APP', 20, 1, 1000),
    webhookAllowPrivate: flagOn('BERTH_WEBHOOK_ALLOW_PRIVATE', get('BERTH_WEBHOOK_ALLOW_PRIVATE')),
    authFailuresPerMinute: num('BERTH_AUTH_FAILURES_PER_MINUTE', 30, 1, 1_000_000),
    consoles: {
      publicOrigins: parseOrigins('BERTH_PUBLIC_URL', get('BERTH_PUBLIC_URL')),
      allowedOrigins: parseOrigins('BERTH_ALLOWED_ORIGINS', get('BERTH_ALLOWED_ORIGINS')),
      idleMs: num('BERTH_CONSOLE_IDLE_MS', 15 * 60_000, 0),
      maxPerApp: num('BERTH_MAX_SESSIONS_PER_APP', 5, 1, 1000),
      keepRecordings: num('BERTH_KEEP_RECORDINGS', 100, 1, 100_000),
    },
    tls: cert && key ? { cert: path.resolve(cwd, cert), key: path.resolve(cwd, key) } : null,
    limits,
  }
}
