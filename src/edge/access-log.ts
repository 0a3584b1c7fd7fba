// The edge's access log: the haproxy config that makes it send one JSON object per request to berth on a
// loopback port, and the receiver that files each line under its app (log/access.log) and counts it for /metrics.

import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { APP_NAME, type Paths } from '../paths.js'
import { AccessFile } from './access-file.js'
import { AccessListener } from './access-listen.js'

/**
 * The JSON object haproxy writes per request (haproxy 2.6 log-format; `%[…,json(utf8s)]` escapes a string
 * for JSON without its quotes and skips invalid UTF-8). Where each value comes from, and why:
 * - `app`, `host`: the variables the edge's frontends set before routing; `app` is "-" for an unknown host
 *   (haproxy logs an absent sample as "-", which no app name can be). `host` is cut to 255 bytes, the
 *   longest DNS name, so a huge Host header cannot make the line longer than a datagram.
 * - `path`: the captured request URI (at most tune.http.logurilen, 1024 bytes) up to its `?`, and without the
 *   scheme and authority of an absolute-form target: never the query string, which can carry tokens. The
 *   `path` fetch is not available at log time, and `%HPO` is not JSON: it leaves `\` as it is.
 * - `at`: when the request ended (the log line's time), UTC to the millisecond; haproxy 2.6 has no
 *   ms_utime, hence the seconds and a zero-padded millisecond part put together.
 * - `durationMs` %Ta (accept to end), `serverMs` %Tr (-1 without an answer), `bytesIn` %U (headers
 *   included), `bytesOut` %B, `slot` the server's name (the instance slot, `<NOSRV>` when none was chosen),
 *   `termination` %tsc (`----` for a clean end).
 * `app`, `status` and `durationMs` come first: berth reads them from fixed places without parsing the line.
 */
const FIELDS = [
  '"app":"%[var(txn.app),json(utf8s)]"',
  '"status":%ST',
  '"durationMs":%Ta',
  '"serverMs":%Tr',
  '"at":"%[date,utime(%Y-%m-%dT%H:%M:%S)].%[date(0,ms),mod(1000),add(1000),regsub(^1,)]Z"',
  '"host":"%[var(txn.host),bytes(0,255),json(utf8s)]"',
  '"method":"%HM"',
  '"path":"%[capture.req.uri,field(1,?),regsub(^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*,),json(utf8s)]"',
  '"bytesIn":%U',
  '"bytesOut":%B',
  '"tls":%[ssl_fc,iif(true,false)]',
  '"client":"%ci"',
  '"slot":"%s"',
  '"termination":"%tsc"',
]

/**
 * The longest line haproxy sends (its `len`): 1 KiB of path (2 KiB escaped, `/` becomes `\/`), 255 bytes of
 * host and the rest fit well; a longer line would arrive cut and be counted as unparseable.
 */
export const LINE_MAX = 8192

/**
 * How the lines travel, both to the same loopback port:
 * `udp` (the default): one datagram per line (`log 127.0.0.1:PORT`). While berth is down the kernel drops
 *   them; when berth falls behind, the kernel drops them too, and counts it (AccessLogDrops.kernel).
 * `ring`: haproxy writes them into a ring buffer in its own memory, and forwards that over one TCP
 *   connection, many lines per read. Lines written while berth is down wait in the ring (4 MiB, about 13,000
 *   lines) and arrive once berth is back. bench/edge-log measured a fifth of UDP's CPU per line in the
 *   receiver, but also one run (of seven, on an overloaded host) where 13 % of the lines never arrived and
 *   nothing counted them: a ring that overflows loses its oldest lines silently. Not the default until that
 *   is understood (bench/README.md, edge-log).
 * Either way haproxy never waits for berth: a slow or absent berth costs lines, never requests.
 */
export type AccessTransport = 'ring' | 'udp'

export interface AccessLogTarget {
  host: string
  port: number
  /** The receiver's key (hex): the first word of every line, so that no other local user can forge lines. */
  key: string
  transport: AccessTransport
}

/** The edge's config for its access lines: the key in it means the file must stay readable by berth only. */
export interface AccessLogConfig {
  /** Top-level sections (the ring), pasted before `defaults`. */
  sections: string[]
  /** For the `defaults` section, which every frontend inherits: where the lines go, raw, and their format. */
  defaults: string[]
}

const RING = 'berth-access'

export function accessLogConfig(target: AccessLogTarget): AccessLogConfig {
  const format = `${target.key} {${FIELDS.join(',')}}`
  // Inside haproxy's double quotes, `"` and `\` are escaped with a backslash.
  const quoted = format.replace(/[\\"]/g, (c) => `\\${c}`)
  // A connection that sent no request (a port scan, a TCP health probe) is no request to log.
  const logFormat = [`log-format "${quoted}"`, 'option dontlognull']
  if (target.transport === 'udp') return { sections: [], defaults: [`log ${target.host}:${target.port} len ${LINE_MAX} format raw local0 info`, ...logFormat] }
  const sections = [
    `ring ${RING}`,
    '  description "access lines for berth"',
    '  format raw',
    `  maxlen ${LINE_MAX}`,
    '  size 4194304',
    '  timeout connect 1s',
    '  timeout server 10s',
    `  server berth ${target.host}:${target.port}`,
  ]
  return { sections, defaults: [`log ring@${RING} len ${LINE_MAX} format raw local0 info`, ...logFormat] }
}

/** Upper bounds of the latency histogram, in seconds. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const
const BUCKETS_MS = DURATION_BUCKETS.map((s) => s * 1000)
/** Status classes, by index: 1xx … 5xx, then `none` (haproxy had no status: the client left first). */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'none'] as const

/** One app's requests since berth started: plain numbers, updated in place per line, read at scrape time. */
export interface AppRequestStats {
  /** Requests per STATUS_CLASSES entry. */
  codes: Float64Array
  /** Requests per DURATION_BUCKETS entry that were not in an earlier one (not cumulative); the rest are above 10 s. */
  buckets: Float64Array
  count: number
  sumSeconds: number
}

export interface AccessLogDrops {
  /** Lines that were cut (longer than LINE_MAX) or not of the edge's format. */
  unparseable: number
  /** Lines without the receiver's key: from something else than the edge. */
  foreign: number
  /** Lines dropped because a file's write queue was full (a slow or stuck disk). */
  queueFull: number
  /** Lines lost to a failed write (a full disk). */
  writeFailed: number
  /** Datagrams the kernel dropped because the socket's buffer was full (from /proc/net/udp). */
  kernel: number
}

export interface AccessLogDeps {
  paths: Paths
  log: Logger
  /** The clock (ms) for idle files and the app-directory cache. */
  now?: () => number
  /** Size of access.log before it becomes access.log.1 (default 10 MiB). */
  maxBytes?: number
  /** Bytes queued per file at most (default 4 MiB: a second of a busy edge's lines, while a write is slow). */
  highWaterBytes?: number
  /** Asked-for UDP receive buffer (default 4 MiB; the kernel caps it at net.core.rmem_max). */
  recvBufferBytes?: number
  /** How long a line may wait to share a write with others (default 100 ms; 0: one write per line). */
  batchMs?: number
}

const EDGE = ''
/** How long "the app's directory exists" is believed, so that a line costs no stat. */
const APP_CHECK_MS = 10_000
/** Files without a line for this long are closed (a host with many quiet apps keeps few descriptors). */
const IDLE_CLOSE_MS = 60_000
const BIND_RETRY_MS = 2_000
const WARN_EVERY_MS = 60_000

/**
 * Receives the edge's access lines on 127.0.0.1:PORT (UDP and TCP). The port is chosen once and kept in
 * edge/log-port, because a running haproxy outlives berth and has it in its config. What happens to the
 * lines while berth is down depends on the transport (AccessTransport); haproxy is not slowed either way.
 */
export class AccessLog {
  private listener: AccessListener | null = null
  private boundPort = 0
  private key = Buffer.alloc(0)
  private files = new Map<string, AccessFile>()
  private appDirs = new Map<string, { exists: boolean; checkedMs: number }>()
  private readonly stats = new Map<string, AppRequestStats>()
  private readonly head = new LineHead()
  private readonly drops = { unparseable: 0, foreign: 0, writeFailed: 0, queueFull: 0 }
  private sweeper: NodeJS.Timeout | null = null
  private rebind: NodeJS.Timeout | null = null
  private lastWarnMs = -Infinity
  private closed = false
  private readonly now: () => number
  private readonly fileOptions

  constructor(private readonly deps: AccessLogDeps) {
    this.now = deps.now ?? Date.now
    this.fileOptions = {
      maxBytes: deps.maxBytes ?? 10 * 1024 * 1024,
      highWaterBytes: deps.highWaterBytes ?? 4 * 1024 * 1024,
      batchMs: deps.batchMs ?? 100,
      now: this.now,
      onWriteError: (err: unknown, lines: number) => {
        this.drops.writeFailed += lines
        this.warn({ err: (err as NodeJS.ErrnoException).code ?? String(err), lines }, 'access log lines could not be written; they are lost')
      },
    }
  }

  get portFile(): string {
    return path.join(this.deps.paths.edge, 'log-port')
  }

  get keyFile(): string {
    return path.join(this.deps.paths.edge, 'log-key')
  }

  /** The port the lines come to (0 before start). */
  get port(): number {
    return this.boundPort
  }

  /** The edge's config for the lines to come here (see accessLogConfig). */
  config(transport: AccessTransport = 'udp'): AccessLogConfig {
    if (!this.boundPort) throw problem('INTERNAL', 'the access log has no port before start()')
    return accessLogConfig({ host: '127.0.0.1', port: this.boundPort, key: this.key.toString().trim(), transport })
  }

  /** Binds the socket on the persisted port (choosing and persisting one the first time). */
  async start(): Promise<void> {
    const { paths } = this.deps
    await fs.promises.mkdir(paths.edge, { recursive: true, mode: 0o750 })
    this.key = Buffer.from(`${await this.loadKey()} `)
    const saved = Number((await fs.promises.readFile(this.portFile, 'utf8').catch(() => '')).trim())
    const wanted = Number.isInteger(saved) && saved > 0 && saved < 65536 ? saved : 0
    try {
      await this.bind(wanted)
    } catch (err) {
      if (wanted === 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
      // Another process holds the port (an old berth still exiting): keep trying, never move to another port,
      // since the running edge sends there.
      this.boundPort = wanted
      this.warn({ port: wanted }, 'the access log port is taken; retrying (the edge\'s lines are dropped until then)')
      this.retryBind(wanted)
    }
    if (wanted === 0) await fs.promises.writeFile(this.portFile, `${this.boundPort}\n`, { mode: 0o640 })
    this.sweeper = setInterval(() => this.closeIdle(), IDLE_CLOSE_MS / 2).unref()
  }

  /** Stops receiving, writes what is queued and closes every file. */
  async close(): Promise<void> {
    this.closed = true
    if (this.sweeper) clearInterval(this.sweeper)
    if (this.rebind) clearTimeout(this.rebind)
    this.sweeper = this.rebind = null
    await this.listener?.close()
    this.listener = null
    const files = [...this.files.values()]
    this.files = new Map()
    await Promise.all(files.map((f) => f.close()))
  }

  /** Resolves when every line received so far is on disk (tests, and close). */
  async flushed(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.flushed()))
  }

  /** Requests per app since berth started; read by /metrics at scrape time. */
  requestStats(): ReadonlyMap<string, AppRequestStats> {
    return this.stats
  }

  droppedLines(): AccessLogDrops {
    let queueFull = this.drops.queueFull
    for (const f of this.files.values()) queueFull += f.dropped
    return { ...this.drops, queueFull, kernel: this.listener?.kernelDrops() ?? 0 }
  }

  /**
   * One line, a datagram or a TCP line: `KEY {json}\n`. Only app, status and durationMs are read, at their
   * fixed places, without parsing the JSON: haproxy escaped every string in it, and the key says it was
   * haproxy that wrote it.
   */
  receive(msg: Buffer): void {
    const key = this.key
    if (msg.length <= key.length || msg.compare(key, 0, key.length, 0, key.length) !== 0) {
      this.drops.foreign++
      return
    }
    const head = this.head
    // A line cut at LINE_MAX has lost its closing brace and newline.
    if (!head.read(msg, key.length) || msg[msg.length - 1] !== NL || msg[msg.length - 2] !== CLOSE) {
      this.drops.unparseable++
      return
    }
    const line = msg.subarray(key.length)
    const app = head.app
    if (app === null || !this.appExists(app)) {
      this.file(EDGE).write(line)
      return
    }
    this.count(app, head.status, head.durationMs)
    this.file(app).write(line)
  }

  private count(app: string, status: number, durationMs: number): void {
    let s = this.stats.get(app)
    if (!s) this.stats.set(app, (s = { codes: new Float64Array(STATUS_CLASSES.length), buckets: new Float64Array(DURATION_BUCKETS.length), count: 0, sumSeconds: 0 }))
    const cls = status >= 100 && status < 600 ? Math.floor(status / 100) - 1 : STATUS_CLASSES.length - 1
    s.codes[cls]!++
    const ms = Math.max(0, durationMs)
    let i = 0
    while (i < BUCKETS_MS.length && ms > BUCKETS_MS[i]!) i++
    if (i < BUCKETS_MS.length) s.buckets[i]!++
    s.count++
    s.sumSeconds += ms / 1000
  }

  private file(app: string): AccessFile {
    let f = this.files.get(app)
    if (!f) {
      const dir = app === EDGE ? this.deps.paths.edge : this.deps.paths.log(app)
      this.files.set(app, (f = new AccessFile(path.join(dir, 'access.log'), this.fileOptions)))
    }
    return f
  }

  /** Lines of an app berth does not have (removed, or a name the edge still routes) go to the edge's file. */
  private appExists(app: string): boolean {
    const now = this.now()
    const known = this.appDirs.get(app)
    if (known && now - known.checkedMs < APP_CHECK_MS) return known.exists
    const exists = APP_NAME.test(app) && fs.existsSync(this.deps.paths.app(app))
    this.appDirs.set(app, { exists, checkedMs: now })
    return exists
  }

  private closeIdle(): void {
    const now = this.now()
    for (const [app, f] of this.files) {
      if (f.idle && now - f.lastWriteMs >= IDLE_CLOSE_MS) {
        this.drops.queueFull += f.dropped
        this.files.delete(app)
        void f.close()
      }
    }
    for (const [app, known] of this.appDirs) if (now - known.checkedMs >= APP_CHECK_MS) this.appDirs.delete(app)
  }

  private async bind(port: number): Promise<void> {
    const listener = new AccessListener({
      recvBufferBytes: this.deps.recvBufferBytes ?? 4 * 1024 * 1024,
      maxLine: LINE_MAX,
      onLine: (line) => this.receive(line),
      onCutLine: () => this.drops.unparseable++,
      onError: (err) => this.warn({ err: err.message }, 'the access log socket failed'),
    })
    await listener.listen(port)
    // A retry that bound while close() ran: nothing may stay open after close.
    if (this.closed) return void (await listener.close())
    this.listener = listener
    this.boundPort = listener.port
    this.deps.log.info({ port: this.boundPort, recvBuffer: listener.recvBufferBytes }, 'receiving the edge\'s access log')
  }

  private retryBind(port: number): void {
    this.rebind = setTimeout(() => {
      this.rebind = null
      if (this.closed) return
      this.bind(port).catch(() => this.retryBind(port))
    }, BIND_RETRY_MS).unref()
  }

  private async loadKey(): Promise<string> {
    const saved = (await fs.promises.readFile(this.keyFile, 'utf8').catch(() => '')).trim()
    if (/^[0-9a-f]{32}$/.test(saved)) return saved
    const key = crypto.randomBytes(16).toString('hex')
    await fs.promises.writeFile(this.keyFile, `${key}\n`, { mode: 0o600 })
    return key
  }

  private warn(detail: object, msg: string): void {
    const now = this.now()
    if (now - this.lastWarnMs < WARN_EVERY_MS) return
    this.lastWarnMs = now
    this.deps.log.warn({ ...detail, drops: this.droppedLines() }, msg)
  }
}

const NL = 0x0a
const CLOSE = 0x7d
const HEAD = Buffer.from('{"app":"')
const STATUS = Buffer.from('","status":')
const DURATION = Buffer.from(',"durationMs":')

/**
 * Reads the leading fields of a line where FIELDS puts them, into itself: one reader serves every datagram,
 * so a line costs no allocation beyond its app's name.
 */
class LineHead {
  app: string | null = null
  status = 0
  durationMs = 0
  private value = 0
  private end = 0

  /** False when the line does not start the way FIELDS writes it. */
  read(msg: Buffer, from: number): boolean {
    if (msg.compare(HEAD, 0, HEAD.length, from, from + HEAD.length) !== 0) return false
    const appStart = from + HEAD.length
    const appEnd = msg.indexOf(0x22, appStart)
    if (appEnd < 0 || appEnd - appStart > 64) return false
    if (msg.compare(STATUS, 0, STATUS.length, appEnd, appEnd + STATUS.length) !== 0) return false
    if (!this.int(msg, appEnd + STATUS.length)) return false
    this.status = this.value
    if (msg.compare(DURATION, 0, DURATION.length, this.end, this.end + DURATION.length) !== 0) return false
    if (!this.int(msg, this.end + DURATION.length)) return false
    this.durationMs = this.value
    const app = msg.toString('latin1', appStart, appEnd)
    this.app = app === '-' ? null : app
    return true
  }

  /** A decimal integer (haproxy writes -1 for a timer that did not run) into value, and where it ends. */
  private int(msg: Buffer, at: number): boolean {
    const negative = msg[at] === 0x2d
    let i = negative ? at + 1 : at
    let value = 0
    const start = i
    while (i < msg.length && msg[i]! >= 0x30 && msg[i]! <= 0x39 && i - start < 12) value = value * 10 + msg[i++]! - 0x30
    if (i === start) return false
    this.value = negative ? -value : value
    this.end = i
    return true
  }
}
