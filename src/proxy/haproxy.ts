// haproxy as berth drives it: the configuration of one app's proxy (a public frontend, one backend with a
// server per instance slot) and its runtime API over the unix socket, each call with a timeout.

import net from 'node:net'
import { problem } from '../errors.js'
import { SLOTS, type Slot } from '../paths.js'

export const BACKEND = 'instances'

/** Where a slot's instance listens; the slot that is not live is written disabled (maint). */
export interface SlotTarget {
  slot: Slot
  port: number
}

export interface ConfigInput {
  listen: string
  socket: string
  /** The live instance, or null before the first one has passed verification. */
  live: SlotTarget | null
  /** Once told to stop listening (SIGUSR1, when berth moves the proxy to a new address), the longest it stays. */
  hardStopAfterMs?: number
}

/**
 * The timeouts and retries of every haproxy berth runs (an app's own and the edge): a request's headers get
 * 30 s, an idle keep-alive 30 s, an answer 60 s (the edge sets each app's own), a reconnect to a switched
 * slot three tries. Websockets (LiveView, channels) live as long as the drain allows, not 60 s.
 */
export const TIMEOUTS = [
  '  timeout connect 2s',
  '  timeout client 60s',
  '  timeout server 60s',
  '  timeout http-request 30s',
  '  timeout http-keep-alive 30s',
  '  timeout tunnel 24h',
  '  retries 3',
]

/**
 * The config a (re)started haproxy reads: only the live slot enabled, so that a proxy that died and came back
 * sends traffic to the live instance and nowhere else. Switching at run time goes through the socket instead.
 * Only requests that failed are logged, with haproxy's own warnings, to its stdout: berth's log file for it.
 */
export function renderConfig(c: ConfigInput): string {
  const servers = SLOTS.map((slot) => {
    // A disabled server still needs a real port: haproxy refuses `set server ... port` on one without.
    const port = c.live?.slot === slot ? c.live.port : 1
    return `  server ${slot} 127.0.0.1:${port}${c.live?.slot === slot ? '' : ' disabled'}`
  })
  return [
    '# Written by berth at every switch of the live instance; edits are overwritten.',
    'global',
    `  stats socket ${c.socket} mode 600 level admin`,
    '  stats timeout 10s',
    ...(c.hardStopAfterMs === undefined ? [] : [`  hard-stop-after ${Math.max(1, c.hardStopAfterMs)}ms`]),
    // One thread: on a small host it shares the cores with the BEAM; a second thread mostly adds contention.
    '  nbthread 1',
    // No SO_REUSEPORT: with it, a second haproxy (another app's, another agent's) binds the same address and
    // the kernel splits the requests between them. Without it that bind fails, and the deploy says so
    // (PROXY_START_FAILED). berth never needs two processes on one address: a move starts the new haproxy on
    // the new address, and a restart of a dead one follows its exit.
    '  noreuseport',
    '  log stdout format raw local0 info',
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  option forwardfor',
    // Only failed requests are logged (with haproxy's termination state): the apps log their own traffic.
    '  option httplog',
    '  option dontlog-normal',
    ...TIMEOUTS,
    '',
    'frontend public',
    `  bind ${c.listen}`,
    '  http-request set-header X-Forwarded-Proto https if { ssl_fc }',
    '  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }',
    `  default_backend ${BACKEND}`,
    '',
    `backend ${BACKEND}`,
    ...servers,
    '',
  ].join('\n')
}

/**
 * The live slot a config from renderConfig names: its one enabled server. What a restarted haproxy routes to,
 * for instances/recovery.ts when berth.db has lost the route.
 */
export function liveInConfig(config: string): SlotTarget | null {
  for (const m of config.matchAll(/^ {2}server (\w+) 127\.0\.0\.1:(\d+)( disabled)?$/gm)) {
    if (!m[3] && (SLOTS as readonly string[]).includes(m[1]!)) return { slot: m[1] as Slot, port: Number(m[2]) }
  }
  return null
}

/**
 * One runtime API exchange: haproxy answers a command (or `;`-separated commands) and closes the connection.
 * Fails with PROXY_UNREACHABLE when the socket does not answer within timeoutMs.
 */
export function runtimeCommand(socket: string, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socket)
    let out = ''
    const timer = setTimeout(() => {
      conn.destroy()
      reject(problem('PROXY_UNREACHABLE', `haproxy did not answer "${command.split(' ').slice(0, 3).join(' ')}" within ${timeoutMs} ms on ${socket}; berth restarts it if it is gone.`))
    }, timeoutMs)
    conn.setEncoding('utf8')
    conn.on('connect', () => conn.end(`${command}\n`))
    conn.on('data', (d: string) => (out += d))
    conn.on('error', (err) => {
      clearTimeout(timer)
      reject(problem('PROXY_UNREACHABLE', `haproxy's runtime socket ${socket} refused the connection (${(err as NodeJS.ErrnoException).code ?? err.message}).`))
    })
    conn.on('close', () => {
      clearTimeout(timer)
      resolve(out)
    })
  })
}

/**
 * Answers of the set/shutdown commands are empty on success, except `set server addr`, which says what it
 * changed (or that nothing needed to); anything else is haproxy saying no.
 */
export function checkSilent(command: string, answer: string): void {
  const text = answer.trim()
  if (text && !/^(no need to change|IP changed from|port changed from)/i.test(text)) throw problem('PROXY_COMMAND_FAILED', `haproxy refused "${command}": ${text.slice(0, 300)}`)
}

/** The commands that send new connections to `to` and none to the other slot; existing ones keep their server. */
export function switchCommands(to: SlotTarget, backend = BACKEND): string[] {
  const other = SLOTS.find((s) => s !== to.slot)!
  return [`set server ${backend}/${to.slot} addr 127.0.0.1 port ${to.port}`, `set server ${backend}/${to.slot} state ready`, `set server ${backend}/${other} state maint`]
}

/** Current sessions per server of the backend, from `show stat` (CSV: pxname,svname,qcur,qmax,scur,...). */
export function parseSessions(csv: string, backend = BACKEND): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of csv.split('\n')) {
    const f = line.split(',')
    if (f[0] === backend && f[1] && f[1] !== 'BACKEND' && f[1] !== 'FRONTEND') out.set(f[1], Number(f[4]) || 0)
  }
  return out
}
