// Which addresses a webhook may reach: not loopback, link-local, private, shared (CGNAT), multicast or reserved
// ones (nor IPv6 forms that embed them), unless the operator allows it (BERTH_WEBHOOK_ALLOW_PRIVATE).

import dns from 'node:dns'
import net from 'node:net'

/** Why an address is refused, or null when it is a public one. */
export type PrivateKind = 'loopback' | 'link-local' | 'private' | 'shared' | 'multicast' | 'reserved' | 'unspecified'

const V4_RANGES: [number, number, PrivateKind][] = [
  [0x00000000, 8, 'unspecified'], // 0.0.0.0/8: "this network"; connecting to 0.0.0.0 reaches the host itself
  [0x0a000000, 8, 'private'],
  [0x64400000, 10, 'shared'], // 100.64/10, carrier-grade NAT
  [0x7f000000, 8, 'loopback'],
  [0xa9fe0000, 16, 'link-local'], // 169.254/16: cloud metadata services live here
  [0xac100000, 12, 'private'],
  [0xc0000000, 24, 'reserved'], // 192.0.0/24, IETF protocol assignments
  [0xc0a80000, 16, 'private'],
  [0xc6120000, 15, 'reserved'], // 198.18/15, benchmarking
  [0xe0000000, 4, 'multicast'],
  [0xf0000000, 4, 'reserved'], // 240/4 and the broadcast address
]

function v4Number(a: string): number {
  return a.split('.').reduce((n, part) => n * 256 + Number(part), 0)
}

function classifyV4(n: number): PrivateKind | null {
  for (const [base, bits, kind] of V4_RANGES) {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
    if ((n & mask) >>> 0 === base) return kind
  }
  return null
}

/** The 8 groups of an IPv6 address (any valid textual form, a dotted IPv4 tail included). */
function v6Groups(a: string): number[] {
  let text = a.split('%')[0]!.toLowerCase()
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (dotted) {
    const n = v4Number(dotted[1]!)
    text = `${text.slice(0, -dotted[1]!.length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const parse = (s: string) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : [])
  const h = parse(head)
  if (tail === undefined) return h
  const t = parse(tail)
  return [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t]
}

function classifyV6(a: string): PrivateKind | null {
  const g = v6Groups(a)
  const embedded = (hi: number, lo: number) => classifyV4(((hi << 16) >>> 0) + lo)
  // ::/96 holds :: and ::1 and the old IPv4-compatible form; ::ffff:0:0/96 is IPv4-mapped: judge the IPv4.
  if (g.slice(0, 6).every((x) => x === 0)) {
    if (g[6] === 0 && g[7] === 0) return 'unspecified'
    if (g[6] === 0 && g[7] === 1) return 'loopback'
    return embedded(g[6]!, g[7]!) ?? 'reserved'
  }
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return embedded(g[6]!, g[7]!)
  // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they carry.
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return embedded(g[6]!, g[7]!)
  if (g[0] === 0x2002) return embedded(g[1]!, g[2]!)
  if ((g[0]! & 0xfe00) === 0xfc00) return 'private' // fc00::/7, unique local
  if ((g[0]! & 0xffc0) === 0xfe80 || (g[0]! & 0xffc0) === 0xfec0) return 'link-local' // and the old site-local
  if ((g[0]! & 0xff00) === 0xff00) return 'multicast'
  return null
}

/** What kind of non-public address `address` (an IP literal, IPv6 without brackets) is; null for a public one. */
export function privateKind(address: string): PrivateKind | null {
  const family = net.isIP(address)
  if (family === 4) return classifyV4(v4Number(address))
  if (family === 6) return classifyV6(address)
  return null
}

/** The IP literal a URL names as its host (IPv6 without brackets), or null for a host name. */
export function literalHost(u: URL): string | null {
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1')
  return net.isIP(host) ? host : null
}

/** Why one delivery attempt failed in berth's own words (no answer in time, a name without addresses). */
export class DeliveryError extends Error {
  override name = 'DeliveryError'
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message)
  }
}

/** Thrown (and stored as the delivery's error) when a target is not public and private ones are not allowed. */
export class TargetRefused extends Error {
  override name = 'TargetRefused'
  readonly code = 'WEBHOOK_TARGET_PRIVATE'
  constructor(readonly kind: PrivateKind) {
    // Neither the address nor the port: the sentence must not tell an app-limited admin what lives inside.
    super(`the target is a ${kind} address; berth delivers webhooks to public addresses only unless BERTH_WEBHOOK_ALLOW_PRIVATE=1`)
  }
}

/**
 * A `lookup` for http(s).request that resolves the name, refuses it when any of its addresses is not public,
 * and hands the connection only the addresses it checked: a name that answers a public address to a check
 * and a private one to the connection (DNS rebinding) has no second lookup to answer.
 */
export function checkedLookup(allowPrivate: boolean): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { family: options.family, hints: options.hints, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0)
      const refused = allowPrivate ? null : addresses.map((a) => privateKind(a.address)).find((k) => k !== null)
      if (refused) return callback(Object.assign(new TargetRefused(refused), { errno: undefined }) as NodeJS.ErrnoException, '', 0)
      if (addresses.length === 0) return callback(new DeliveryError(`${hostname} has no address`, 'ENOTFOUND'), '', 0)
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, addresses)
      callback(null, addresses[0]!.address, addresses[0]!.family)
    })
  }
}
