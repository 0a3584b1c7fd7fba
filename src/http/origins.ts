// Which page origins may open consoles. berth's own origin comes from BERTH_PUBLIC_URL or, by default, from
// the address the client actually connected to (the socket), never from the Host header: a page whose name
// was rebound to 127.0.0.1 (DNS rebinding) sends a Host and an Origin that agree with each other.

import net from 'node:net'

/** The origins a browser uses for a berth reached at this local address: for loopback also `localhost`. */
export function ownOrigins(local: { address: string; port: number }, tls: boolean): string[] {
  const scheme = tls ? 'https' : 'http'
  const address = local.address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '')
  const host = net.isIPv6(address) ? `[${address}]` : address
  const loopback = address === '::1' || /^127\./.test(address)
  // URL drops the scheme's default port (443, 80), exactly as browsers do in Origin.
  const origin = (h: string) => new URL(`${scheme}://${h}:${local.port}`).origin
  return loopback ? [origin(host), origin('localhost')] : [origin(host)]
}

/**
 * True when a browser page from `origin` may open a console: one of berth's own origins (`publicOrigins`,
 * else those of the connection's local address) or one of `allowed`.
 */
export function originAllowed(origin: string, own: string[], allowed: string[]): boolean {
  const o = origin.toLowerCase()
  return own.includes(o) || allowed.includes(o)
}
