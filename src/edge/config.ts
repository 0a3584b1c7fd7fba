// The shared edge's haproxy configuration: two frontends (plain HTTP, HTTPS by SNI), one backend per app
// with a server per instance slot, berth's fallback backend, and the map files that route by hostname.

import { SLOTS, type Slot } from '../paths.js'
import { TIMEOUTS, type SlotTarget } from '../proxy/haproxy.js'

/** What the edge keeps of one app's settings: written into its backend and the maps. */
export interface EdgeApp {
  hosts: string[]
  /** TLS in force for the hosts (`tlsMode` of the settings): acme and custom redirect and get HSTS. */
  tls: 'acme' | 'custom' | 'off'
  httpsRedirect: boolean
  hstsMaxAge: number | null
  maxBodyBytes: number | null
  timeoutMs: number
  drainTimeoutMs: number
}

/** The files of one edge, all absolute (haproxy resolves relative paths from its cwd). */
export interface EdgeFiles {
  runtimeSocket: string
  fallbackSocket: string
  crtList: string
  hostsMap: string
  redirectMap: string
  hstsMap: string
  pausedMap: string
}

export interface EdgeConfigInput {
  http: string
  https: string | null
  files: EdgeFiles
  apps: ReadonlyMap<string, EdgeApp>
  /** Each app's live instance (null: none verified yet; its hosts answer 503 until one is). */
  live: (app: string) => SlotTarget | null
  /** The access log's lines (edge/access-log.ts): top-level sections and `defaults` lines. */
  log?: { sections: string[]; defaults: string[] }
  /** How long a replaced worker keeps the connections it has after a reload (websockets). */
  hardStopAfterMs: number
}

export const backendOf = (app: string): string => `app_${app}`
const FALLBACK = 'berth'
/** The ACME HTTP-01 path: answered by berth on every host, never redirected. */
const CHALLENGE = '/.well-known/acme-challenge/'

/** The HTTPS port as a redirect needs it: empty for 443, else `:PORT`. */
function httpsPortSuffix(https: string): string {
  const port = /:(\d+)$/.exec(https)?.[1]
  return port === '443' ? '' : `:${port}`
}

/** The lines both frontends share: the host, the app, headers clients may not forge, berth's own answers. */
function routing(c: EdgeConfigInput, proto: 'http' | 'https'): string[] {
  const f = c.files
  return [
    // The routing key: the Host header without port, lower case (HTTP/2's :authority arrives as Host too).
    '  http-request set-var(txn.host) req.hdr(host),field(1,:),lower',
    `  http-request set-var(txn.app) var(txn.host),map_str(${f.hostsMap})`,
    // Never trusted from the client: the app sees only what the edge saw.
    '  http-request del-header forwarded',
    '  http-request del-header x-forwarded-for',
    '  http-request del-header x-berth-edge-app',
    `  http-request set-header X-Forwarded-Proto ${proto}`,
    '  http-request set-header X-Forwarded-Host %[req.hdr(host)] if { req.hdr(host) -m found }',
    '  http-request del-header x-forwarded-host unless { req.hdr(host) -m found }',
    // berth answers challenges, unknown hosts and paused apps; it learns the app from this header alone.
    '  http-request set-header X-Berth-Edge-App %[var(txn.app)] if { var(txn.app) -m found }',
    `  use_backend ${FALLBACK} if { path_beg ${CHALLENGE} }`,
    `  use_backend ${FALLBACK} if { var(txn.app),map_str(${f.pausedMap}) -m found }`,
    ...(proto === 'http' && c.https
      ? [`  http-request redirect code 308 location https://%[var(txn.host)]${httpsPortSuffix(c.https)}%[capture.req.uri] if { var(txn.host),map_str(${f.redirectMap}) -m found } !{ path_beg ${CHALLENGE} }`]
      : []),
    // A dynamic name whose backend does not exist (a map ahead of a reload) falls to the default: berth's 404.
    '  use_backend app_%[var(txn.app)] if { var(txn.app) -m found }',
    `  default_backend ${FALLBACK}`,
  ]
}

/** The server line of one slot: the live one enabled on its port, the other disabled (a real port is needed). */
function serverLine(slot: Slot, live: SlotTarget | null): string {
  const on = live?.slot === slot
  return `  server ${slot} 127.0.0.1:${on ? live.port : 1}${on ? '' : ' disabled'}`
}

function backend(app: string, a: EdgeApp, live: SlotTarget | null): string[] {
  return [
    `backend ${backendOf(app)}`,
    `  timeout server ${a.timeoutMs}ms`,
    ...(a.maxBodyBytes === null ? [] : [`  http-request deny deny_status 413 if { req.hdr(content-length) -m int gt ${a.maxBodyBytes} }`]),
    ...SLOTS.map((slot) => serverLine(slot, live)),
    '',
  ]
}

/** The config a (re)started or reloaded edge reads; switches between slots go through the runtime API. */
export function renderEdgeConfig(c: EdgeConfigInput): string {
  const f = c.files
  const apps = [...c.apps.keys()].sort()
  return [
    '# Written by berth (edge/config.ts) at every change of the apps on the edge; edits are overwritten.',
    'global',
    `  stats socket ${f.runtimeSocket} mode 600 level admin expose-fd listeners`,
    '  stats timeout 10s',
    `  hard-stop-after ${Math.max(1000, c.hardStopAfterMs)}ms`,
    // Without SO_REUSEPORT a second haproxy on the same address fails to bind instead of sharing its traffic.
    '  noreuseport',
    '  ssl-default-bind-options ssl-min-ver TLSv1.2',
    '  tune.ssl.default-dh-param 2048',
    '',
    ...(c.log?.sections.length ? [...c.log.sections, ''] : []),
    'defaults',
    '  mode http',
    ...(c.log?.defaults ?? []).map((l) => `  ${l}`),
    '  option forwardfor',
    // At a reload the old worker would close idle keep-alive connections at once, and a client that sends on
    // one at that moment sees a reset (2 of ~900 HTTPS requests over 4 reloads without this). With it, the old
    // worker answers the next request on each with Connection: close, as haproxy did before 2.4.
    '  option idle-close-on-response',
    ...TIMEOUTS,
    '  option redispatch',
    '',
    'frontend edge_http',
    `  bind ${c.http}`,
    ...routing(c, 'http'),
    '',
    ...(c.https
      ? [
          'frontend edge_https',
          `  bind ${c.https} ssl crt-list ${f.crtList} alpn h2,http/1.1`,
          `  http-response set-header Strict-Transport-Security "max-age=%[var(txn.app),map_str(${f.hstsMap})]" if { var(txn.app),map_str(${f.hstsMap}) -m found }`,
          ...routing(c, 'https'),
          '',
        ]
      : []),
    `backend ${FALLBACK}`,
    `  server fallback ${f.fallbackSocket}`,
    '',
    ...apps.flatMap((app) => backend(app, c.apps.get(app)!, c.live(app))),
  ].join('\n')
}

/** The hosts whose plain-HTTP requests go to HTTPS: TLS on, redirect on, and a certificate served for it. */
export function redirectedHosts(apps: ReadonlyMap<string, EdgeApp>, certified: ReadonlySet<string>, httpsOn: boolean): string[] {
  if (!httpsOn) return []
  // Until its certificate is there (ACME issues after the first deploy), a host stays on plain HTTP rather
  // than being sent to an HTTPS that shows the default certificate.
  return [...apps.values()].filter((a) => a.tls !== 'off' && a.httpsRedirect).flatMap((a) => a.hosts.filter((h) => certified.has(h)))
}

/** The lines of each map file: `key value`, one per line (haproxy loads them at start and reload). */
export function renderMaps(apps: ReadonlyMap<string, EdgeApp>, paused: ReadonlyMap<string, number>, certified: ReadonlySet<string>, httpsOn: boolean): { hosts: string; redirect: string; hsts: string; paused: string } {
  const lines = { hosts: [] as string[], redirect: redirectedHosts(apps, certified, httpsOn).map((h) => `${h} 1`).sort(), hsts: [] as string[], paused: [] as string[] }
  for (const [app, a] of [...apps].sort(([x], [y]) => x.localeCompare(y))) {
    for (const host of a.hosts) lines.hosts.push(`${host} ${app}`)
    if (httpsOn && a.tls !== 'off' && a.hstsMaxAge !== null) lines.hsts.push(`${app} ${a.hstsMaxAge}`)
  }
  for (const [app, retryAfter] of paused) lines.paused.push(`${app} ${retryAfter}`)
  const text = (l: string[]) => (l.length ? `${l.join('\n')}\n` : '')
  return { hosts: text(lines.hosts), redirect: text(lines.redirect), hsts: text(lines.hsts), paused: text(lines.paused) }
}

/** The live slot of each app backend in a config from renderEdgeConfig (a lost route read back). */
export function liveInEdgeConfig(config: string): Map<string, SlotTarget> {
  const out = new Map<string, SlotTarget>()
  let app: string | null = null
  for (const line of config.split('\n')) {
    const b = /^backend app_(\S+)$/.exec(line)
    if (b) app = b[1]!
    else if (/^\S/.test(line)) app = null
    const m = /^ {2}server (a|b) 127\.0\.0\.1:(\d+)$/.exec(line)
    if (app && m) out.set(app, { slot: m[1] as Slot, port: Number(m[2]) })
  }
  return out
}
