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
  /** Of those, at most this many for one app and for one token (429), so one cannot take every slot. */
  maxUploadsPerApp: number
  maxUploadsPerToken: number
  /** An upload whose last `uploadRateWindowMs` brought less than this many bytes a second is ended (408). */
  uploadMinBytesPerSec: number
  uploadRateWindowMs: number
  /** The longest an upload's body may take to arrive, however steadily it trickles. */
  uploadDeadlineMs: number
}

/** The HTTP listener's own limits (issue 23, D2/D3): what one client can hold of berth's connections. */
export interface HttpLimits {
  /** Time from a connection's first byte (or a keep-alive request's start) to the end of its headers. */
  headersTimeoutMs: number
  /** Open connections from one address (all of loopback counts as one; IPv6 by /64). */
  maxConnectionsPerAddress: number
  /** Long-lived answers (log follows, event streams, console websockets) at once, in all. */
  maxStreams: number
  maxStreamsPerToken: number
  maxStreamsPerApp: number
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
  /** The ports nodes listen on for distribution, one per instance (no epmd); see supervision/distribution.ts. */
  distPorts: { first: number; last: number }
  /** The private loopback ports of proxied apps' instances (their PORT), one per slot; see instances/ports.ts. */
  instancePorts: { first: number; last: number }
  webhookBackoffMs: number
  /** One webhook delivery attempt at most this long (connect to status line). */
  webhookTimeoutMs: number
  /** Webhooks per app (and for every app) at most. */
  maxWebhooksPerApp: number
  /** Deliver webhooks to loopback, link-local and private addresses too (off: refused, see webhooks/targets.ts). */
  webhookAllowPrivate: boolean
  /** Open client connections at most; more are refused by the kernel-level accept limit of Node. */
  maxConnections: number
  /** Failed authentications per client address and minute before its failures get 429 (valid tokens pass). */
  authFailuresPerMinute: number
  http: HttpLimits
  consoles: {
    /** berth's own origins (BERTH_PUBLIC_URL); empty: those of the address a client connected to. */
    publicOrigins: string[]
    /** Other page origins that may open consoles. */
    allowedOrigins: string[]
    idleMs: number
    maxPerApp: number
    keepRecordings: number
  }
  /** Apps as their own Unix users (BERTH_APP_ISOLATION): auto = wherever berth may switch users. */
  isolation: 'auto' | 'on' | 'off'
  /** The uids (= gids) apps get, one each (BERTH_APP_UIDS); see isolation/users.ts. */
  appUids: { first: number; last: number }
  /** The haproxy executable that fronts apps with the proxy setting on (zero-downtime deploys). */
  haproxy: string
  /** The key ring that seals app environments (secrets/keyring.ts): BERTH_ENV_KEY_FILE, absolute, or null. */
  envKeyFile: string | null
  /** systemd's $CREDENTIALS_DIRECTORY (LoadCredentialEncrypted=berth-env-key in the unit), or null. */
  credentialsDir: string | null
  /** The shared edge (issue 25): one haproxy for every app with proxy.hosts; null when neither listener is set. */
  edge: EdgeConfig | null
  /** Test-only: pause this long when a deployment step starts, so a test can kill the agent inside it. */
  testStepPause: { step: string; ms: number } | null
  limits: Limits
}

export interface EdgeConfig {
  /** Plain-HTTP listener, HOST:PORT (ACME HTTP-01 challenges, redirects, plain hosts); null: none. */
  http: string | null
  /** HTTPS listener, HOST:PORT; null: none (then every host is plain HTTP). */
  https: string | null
  /** Set: systemd runs the edge's haproxy (berth-edge.service); berth writes its config and reloads it here. */
  masterSocket: string | null
  acme: {
    directory: string
    email: string | null
    /** Extra CA bundle (PEM) trusted for the ACME server's HTTPS; null: the system's. */
    caFile: string | null
    /** An ACME certificate is renewed this far into its lifetime (Let's Encrypt advises two thirds). */
    renewFraction: number
  }
}

export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory'

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
  { env: 'BERTH_DIST_PORTS', flag: 'dist-ports', help: 'FIRST-LAST: distribution ports of the nodes berth runs, one per node and slot (default 4370-4469)' },
  { env: 'BERTH_INSTANCE_PORTS', flag: 'instance-ports', help: 'FIRST-LAST: private loopback ports (PORT) of proxied apps\' instances, one per slot (default 20000-23999)' },
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
  { env: 'BERTH_HEADERS_TIMEOUT_MS', flag: 'headers-timeout-ms', help: 'time a client has to send its request headers (default 10000)' },
  { env: 'BERTH_MAX_CONNECTIONS_PER_ADDRESS', flag: 'max-connections-per-address', help: 'open connections from one client address, all of loopback as one (default 64)' },
  { env: 'BERTH_MAX_STREAMS', flag: 'max-streams', help: 'log follows, event streams and consoles open at once (default 128)' },
  { env: 'BERTH_MAX_STREAMS_PER_TOKEN', flag: 'max-streams-per-token', help: 'of those, per token (default 8)' },
  { env: 'BERTH_MAX_STREAMS_PER_APP', flag: 'max-streams-per-app', help: 'of those, per app (default 32)' },
  { env: 'BERTH_MAX_UPLOADS_PER_APP', flag: 'max-uploads-per-app', help: 'uploads at once for one app (default 2)' },
  { env: 'BERTH_MAX_UPLOADS_PER_TOKEN', flag: 'max-uploads-per-token', help: 'uploads at once with one token (default 3)' },
  { env: 'BERTH_UPLOAD_MIN_BYTES_PER_SEC', flag: 'upload-min-bytes-per-sec', help: 'slowest average upload rate over the rate window (default 16384)' },
  { env: 'BERTH_UPLOAD_RATE_WINDOW_MS', flag: 'upload-rate-window-ms', help: 'window the upload rate is averaged over, also its grace period (default 30000)' },
  { env: 'BERTH_UPLOAD_DEADLINE_MS', flag: 'upload-deadline-ms', help: 'longest time an upload body may take (default 3600000)' },
  { env: 'BERTH_HAPROXY', flag: 'haproxy', help: 'haproxy executable for apps with the proxy setting (default /usr/sbin/haproxy)' },
  { env: 'BERTH_EDGE_HTTP', flag: 'edge-http', help: 'HOST:PORT of the shared edge\'s plain-HTTP listener (ACME HTTP-01, redirects), e.g. 0.0.0.0:80 (default: no edge)' },
  { env: 'BERTH_EDGE_HTTPS', flag: 'edge-https', help: 'HOST:PORT of the shared edge\'s HTTPS listener, e.g. 0.0.0.0:443' },
  { env: 'BERTH_EDGE_MASTER_SOCKET', flag: 'edge-master-socket', help: 'master socket of an edge haproxy that systemd runs (berth-edge.service); berth then reloads it and never starts one' },
  { env: 'BERTH_ACME_DIRECTORY', flag: 'acme-directory', help: "ACME directory URL (default Let's Encrypt production)" },
  { env: 'BERTH_ACME_EMAIL', flag: 'acme-email', help: 'contact address of the ACME account (optional)' },
  { env: 'BERTH_ACME_CA_FILE', flag: 'acme-ca-file', help: 'PEM bundle to trust when talking to the ACME server (a private CA, or pebble in tests)' },
  { env: 'BERTH_ACME_RENEW_FRACTION', flag: 'acme-renew-fraction', help: 'renew ACME certificates this far into their lifetime, 0.1 to 0.95 (default 0.667: two thirds)' },
  { env: 'BERTH_APP_ISOLATION', flag: 'app-isolation', help: "run each app as its own Unix user: auto (default: wherever berth may switch users), on (refuse to start without the privilege), off" },
  { env: 'BERTH_APP_UIDS', flag: 'app-uids', help: 'the uids (and gids) apps get, one each, FIRST-LAST (default 41000-41999)' },
  { env: 'BERTH_ENV_KEY_FILE', flag: 'env-key-file', help: "key file that encrypts the apps' env values (default: systemd credential berth-env-key, else DATA/keys/env.key)" },
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

function parsePortRange(raw: string, name = 'BERTH_DIST_PORTS', example = '4370-4469'): Config['distPorts'] {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(raw)
  const first = Number(m?.[1])
  const last = Number(m?.[2])
  if (!m || first < 1024 || last > 65535 || first > last) throw new ConfigError(`${name} must be FIRST-LAST, ports from 1024 to 65535 (e.g. ${example}), got "${raw}"`)
  return { first, last }
}

function isolationSetting(raw: string | undefined): Config['isolation'] {
  const v = (raw ?? 'auto').trim().toLowerCase() || 'auto'
  if (v === 'auto' || v === 'on' || v === 'off') return v
  throw new ConfigError(`BERTH_APP_ISOLATION must be auto, on or off, got "${v.slice(0, 40)}"`)
}

/** Above the system's own accounts (1000 on), and not root's group of numbers: 1000 at the least. */
function uidRange(raw: string): Config['appUids'] {
  const m = /^(\d{1,10})-(\d{1,10})$/.exec(raw)
  const first = Number(m?.[1])
  const last = Number(m?.[2])
  if (!m || first < 1000 || last > 4_294_967_294 || first > last) throw new ConfigError(`BERTH_APP_UIDS must be FIRST-LAST, uids from 1000 up (e.g. 41000-41999), got "${raw.slice(0, 40)}"`)
  return { first, last }
}

/** An edge listener: IPV4:PORT or [IPV6]:PORT, as haproxy binds it. */
function edgeListen(name: string, raw: string): string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(raw)
  const port = Number(m?.[3])
  if (!m || port < 1 || port > 65535) throw new ConfigError(`${name} must be IPV4:PORT or [IPV6]:PORT, e.g. 0.0.0.0:443, got "${raw.slice(0, 80)}"`)
  return raw
}

function acmeDirectory(raw: string): string {
  let u: URL | null = null
  try {
    u = new URL(raw)
  } catch {
    // reported below
  }
  if (!u || u.protocol !== 'https:') throw new ConfigError(`BERTH_ACME_DIRECTORY must be an https:// URL, got "${raw.slice(0, 120)}"`)
  return u.href
}

function renewFraction(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 2 / 3
  const f = Number(raw)
  // Below 0.1 a 90-day certificate would be re-ordered every 9 days; above 0.95 a failure leaves no time to retry.
  if (!/^\d*\.?\d+$/.test(raw) || f < 0.1 || f > 0.95) throw new ConfigError(`BERTH_ACME_RENEW_FRACTION must be a fraction from 0.1 to 0.95 (e.g. 0.667), got "${raw.slice(0, 40)}"`)
  return f
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
    maxUploadsPerApp: num('BERTH_MAX_UPLOADS_PER_APP', 2, 1, 1000),
    maxUploadsPerToken: num('BERTH_MAX_UPLOADS_PER_TOKEN', 3, 1, 1000),
    uploadMinBytesPerSec: num('BERTH_UPLOAD_MIN_BYTES_PER_SEC', 16 * 1024, 0),
    uploadRateWindowMs: num('BERTH_UPLOAD_RATE_WINDOW_MS', 30_000, 100, 3600_000),
    uploadDeadlineMs: num('BERTH_UPLOAD_DEADLINE_MS', 3600_000, 1000, 7 * 86_400_000),
  }
  const maxConnections = num('BERTH_MAX_CONNECTIONS', 512, 2, 1_000_000)
  const http: HttpLimits = {
    headersTimeoutMs: num('BERTH_HEADERS_TIMEOUT_MS', 10_000, 100, 60_000),
    maxConnectionsPerAddress: num('BERTH_MAX_CONNECTIONS_PER_ADDRESS', Math.min(64, maxConnections), 1, maxConnections),
    maxStreams: num('BERTH_MAX_STREAMS', Math.max(1, Math.floor(maxConnections / 4)), 1, 1_000_000),
    maxStreamsPerToken: num('BERTH_MAX_STREAMS_PER_TOKEN', 8, 1, 1_000_000),
    maxStreamsPerApp: num('BERTH_MAX_STREAMS_PER_APP', 32, 1, 1_000_000),
  }
  // Streams never take every connection: the rest is the reserve for other clients and /healthz.
  if (http.maxStreams >= maxConnections) throw new ConfigError(`BERTH_MAX_STREAMS (${http.maxStreams}) must be below BERTH_MAX_CONNECTIONS (${maxConnections}), so that connections stay for other clients and /healthz`)
  const edgeHttp = get('BERTH_EDGE_HTTP') ? edgeListen('BERTH_EDGE_HTTP', get('BERTH_EDGE_HTTP')!) : null
  const edgeHttps = get('BERTH_EDGE_HTTPS') ? edgeListen('BERTH_EDGE_HTTPS', get('BERTH_EDGE_HTTPS')!) : null
  if (edgeHttps && !edgeHttp) throw new ConfigError('BERTH_EDGE_HTTPS needs BERTH_EDGE_HTTP too: ACME validates on plain HTTP, and plain requests are redirected there')
  const edge: EdgeConfig | null = edgeHttp
    ? {
        http: edgeHttp,
        https: edgeHttps,
        masterSocket: get('BERTH_EDGE_MASTER_SOCKET') ? path.resolve(cwd, get('BERTH_EDGE_MASTER_SOCKET')!) : null,
        acme: {
          directory: acmeDirectory(get('BERTH_ACME_DIRECTORY') || LETS_ENCRYPT),
          email: get('BERTH_ACME_EMAIL') || null,
          caFile: get('BERTH_ACME_CA_FILE') ? path.resolve(cwd, get('BERTH_ACME_CA_FILE')!) : null,
          renewFraction: renewFraction(get('BERTH_ACME_RENEW_FRACTION')),
        },
      }
    : null
  return {
    dataDir,
    host,
    port,
    logLevel,
    shutdownGraceMs: num('BERTH_SHUTDOWN_GRACE_MS', 10_000, 0),
    epmdPort: num('BERTH_EPMD_PORT', 4369, 1, 65535),
    distPorts: parsePortRange(get('BERTH_DIST_PORTS') || '4370-4469'),
    // Below Linux's ephemeral range (32768-60999), so that no outgoing connection's local port sits on one, and
    // wide, so that agents sharing a host (each starting at its own offset) rarely try one port at once.
    instancePorts: parsePortRange(get('BERTH_INSTANCE_PORTS') || '20000-23999', 'BERTH_INSTANCE_PORTS', '20000-23999'),
    testStepPause: parseStepPause(env.BERTH_TEST_STEP_PAUSE),
    haproxy: path.resolve(cwd, get('BERTH_HAPROXY') || '/usr/sbin/haproxy'),
    envKeyFile: get('BERTH_ENV_KEY_FILE') ? path.resolve(cwd, get('BERTH_ENV_KEY_FILE')!) : null,
    credentialsDir: env.CREDENTIALS_DIRECTORY ? path.resolve(cwd, env.CREDENTIALS_DIRECTORY) : null,
    maxConnections,
    webhookBackoffMs: num('BERTH_WEBHOOK_BACKOFF_MS', 1000, 10, 3600_000),
    webhookTimeoutMs: num('BERTH_WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
    maxWebhooksPerApp: num('BERTH_MAX_WEBHOOKS_PER_APP', 20, 1, 1000),
    webhookAllowPrivate: flagOn('BERTH_WEBHOOK_ALLOW_PRIVATE', get('BERTH_WEBHOOK_ALLOW_PRIVATE')),
    authFailuresPerMinute: num('BERTH_AUTH_FAILURES_PER_MINUTE', 30, 1, 1_000_000),
    http,
    consoles: {
      publicOrigins: parseOrigins('BERTH_PUBLIC_URL', get('BERTH_PUBLIC_URL')),
      allowedOrigins: parseOrigins('BERTH_ALLOWED_ORIGINS', get('BERTH_ALLOWED_ORIGINS')),
      idleMs: num('BERTH_CONSOLE_IDLE_MS', 15 * 60_000, 0),
      maxPerApp: num('BERTH_MAX_SESSIONS_PER_APP', 5, 1, 1000),
      keepRecordings: num('BERTH_KEEP_RECORDINGS', 100, 1, 100_000),
    },
    edge,
    isolation: isolationSetting(get('BERTH_APP_ISOLATION')),
    appUids: uidRange(get('BERTH_APP_UIDS') || '41000-41999'),
    tls: cert && key ? { cert: path.resolve(cwd, cert), key: path.resolve(cwd, key) } : null,
    limits,
  }
}
