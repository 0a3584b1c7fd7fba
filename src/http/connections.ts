// Owns who holds the listener's connections (issue 23, D2/D3): at most so many per client address and in
// all. When a cap is reached the connection idle the longest (still sending its headers, or kept alive
// between requests) is closed to make room; only when every one is busy is the new connection refused.

import type { Server } from 'node:http'
import type { Socket } from 'node:net'

interface Conn {
  socket: Socket
  key: string
  /** Requests in progress on it (pipelining allows more than one), +1 once upgraded to a websocket. */
  busy: number
  /** When it last became idle: accepted, or its last answer ended. */
  idleSince: number
}

export interface ConnectionLimits {
  maxConnections: number
  maxConnectionsPerAddress: number
}

/**
 * The address a cap counts by. All of loopback is one address: a local client can pick any source in
 * 127.0.0.0/8, and so could spread itself over millions of "addresses". IPv6 counts by /64, the smallest
 * block a host is usually given, for the same reason.
 */
export function addressKey(addr: string | undefined): string {
  if (!addr) return 'unknown'
  const a = addr.toLowerCase().startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr.toLowerCase()
  if (a === '::1' || /^127\./.test(a)) return 'loopback'
  if (!a.includes(':')) return a
  const [head = '', tail] = a.split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`
}

export class ConnectionGuard {
  private readonly conns = new Map<Socket, Conn>()
  private readonly byKey = new Map<string, Set<Conn>>()
  /** Connections closed to make room, and new ones refused because everything was busy (for the log and tests). */
  evicted = 0
  refused = 0

  constructor(private readonly limits: ConnectionLimits) {}

  /** Hooks the guard into a listening (or about to listen) HTTP or HTTPS server. */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.accept(socket))
    server.on('request', (req: { socket: Socket }, res: { once(e: 'close', fn: () => void): void }) => {
      const c = this.find(req.socket)
      if (!c) return
      c.busy++
      res.once('close', () => {
        c.busy--
        if (c.busy === 0) c.idleSince = Date.now()
      })
    })
    // A websocket holds its connection until it closes; the socket's own close ends the entry.
    server.on('upgrade', (req: { socket: Socket }) => {
      const c = this.find(req.socket)
      if (c) c.busy++
    })
  }

  get open(): number {
    return this.conns.size
  }

  openFrom(addr: string): number {
    return this.byKey.get(addressKey(addr))?.size ?? 0
  }

  private accept(socket: Socket): void {
    const key = addressKey(socket.remoteAddress)
    const mine = this.byKey.get(key)
    if ((mine?.size ?? 0) >= this.limits.maxConnectionsPerAddress && !this.evict(mine!.values())) return this.refuse(socket)
    if (this.conns.size >= this.limits.maxConnections && !this.evict(this.conns.values())) return this.refuse(socket)
    const c: Conn = { socket, key, busy: 0, idleSince: Date.now() }
    this.conns.set(socket, c)
    let set = this.byKey.get(key)
    if (!set) this.byKey.set(key, (set = new Set()))
    set.add(c)
    socket.once('close', () => this.forget(c))
  }

  /** Closes the connection of `candidates` idle the longest; false when none is idle. */
  private evict(candidates: Iterable<Conn>): boolean {
    let victim: Conn | null = null
    for (const c of candidates) if (c.busy === 0 && (!victim || c.idleSince < victim.idleSince)) victim = c
    if (!victim) return false
    this.forget(victim)
    victim.socket.destroy()
    this.evicted++
    return true
  }

  private refuse(socket: Socket): void {
    this.refused++
    socket.destroy()
  }

  private forget(c: Conn): void {
    if (this.conns.get(c.socket) !== c) return
    this.conns.delete(c.socket)
    const set = this.byKey.get(c.key)
    set?.delete(c)
    if (set?.size === 0) this.byKey.delete(c.key)
  }

  /** The entry of a request's socket: the TCP socket itself, or the one under a TLS socket. */
  private find(socket: Socket): Conn | undefined {
    return this.conns.get(socket) ?? this.conns.get((socket as Socket & { _parent?: Socket })._parent as Socket)
  }
}
