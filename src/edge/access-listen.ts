// The sockets the edge's access lines arrive on, both on one loopback port: UDP (haproxy's `log HOST:PORT`,
// one datagram per line) and TCP (a haproxy `ring` forwarding its buffer, lines ending in a newline).

import dgram from 'node:dgram'
import fs from 'node:fs'
import net from 'node:net'

export interface AccessListenerOptions {
  /** Asked-for UDP receive buffer; the kernel caps it at net.core.rmem_max. */
  recvBufferBytes: number
  /** The longest line; a longer one on TCP is skipped up to its newline and counted through onCutLine. */
  maxLine: number
  /** One line (a datagram, or a TCP line with its newline); the buffer may be a view of a larger read. */
  onLine(line: Buffer): void
  onCutLine(): void
  onError(err: Error): void
}

/** haproxy opens one connection per ring server; a few more allow for a reload's old process still sending. */
const MAX_CONNECTIONS = 8
const NL = 0x0a
/**
 * After a short read (the kernel had little), a connection rests this long: the lines of 50 ms gather in the
 * socket buffer and come in one read, where reading as they come cost a read per line or two. After a long
 * read it is read on at once, so that a busy edge is never read slower than it writes.
 */
const READ_EVERY_MS = 50
const SHORT_READ = 16 * 1024
const ATTEMPTS = 5

export class AccessListener {
  private udp: dgram.Socket | null = null
  private tcp: net.Server | null = null
  private readonly conns = new Set<net.Socket>()
  port = 0

  constructor(private readonly opts: AccessListenerOptions) {}

  /** Binds both sockets on `port` (0: one that is free for both), or neither. */
  async listen(port: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.listenOnce(port)
      } catch (err) {
        // A port chosen for UDP may be taken for TCP: choose again. A given port is the caller's to retry.
        if (port !== 0 || attempt >= ATTEMPTS || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
      }
    }
  }

  async close(): Promise<void> {
    const { udp, tcp } = this
    this.udp = this.tcp = null
    for (const c of this.conns) c.destroy()
    await Promise.all([udp && new Promise<void>((resolve) => udp.close(() => resolve())), tcp && new Promise<void>((resolve) => tcp.close(() => resolve()))])
  }

  /** The UDP socket's buffer size as the kernel granted it. */
  get recvBufferBytes(): number {
    return this.udp?.getRecvBufferSize() ?? 0
  }

  /** The UDP socket's drop counter in /proc/net/udp (the last column of its row); 0 where it cannot be read. */
  kernelDrops(): number {
    if (!this.udp) return 0
    const local = `0100007F:${this.port.toString(16).toUpperCase().padStart(4, '0')}`
    try {
      for (const row of fs.readFileSync('/proc/net/udp', 'utf8').split('\n')) {
        const cols = row.trim().split(/\s+/)
        if (cols[1] === local) return Number(cols.at(-1)) || 0
      }
    } catch {
      // not Linux, or /proc not mounted
    }
    return 0
  }

  private async listenOnce(port: number): Promise<void> {
    const udp = dgram.createSocket({ type: 'udp4', recvBufferSize: this.opts.recvBufferBytes })
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject)
      udp.bind(port, '127.0.0.1', () => {
        udp.off('error', reject)
        resolve()
      })
    }).catch((err: unknown) => {
      udp.close()
      throw err
    })
    const bound = udp.address().port
    const tcp = net.createServer((conn) => this.accept(conn))
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject)
        tcp.listen({ port: bound, host: '127.0.0.1', exclusive: true }, () => {
          tcp.off('error', reject)
          resolve()
        })
      })
    } catch (err) {
      udp.close()
      throw err
    }
    udp.on('message', (msg) => this.opts.onLine(msg))
    udp.on('error', (err) => this.opts.onError(err))
    tcp.on('error', (err) => this.opts.onError(err))
    this.udp = udp
    this.tcp = tcp
    this.port = bound
  }

  /** Splits a connection's bytes at newlines: many lines per read, which is what makes TCP cheaper than UDP. */
  private accept(conn: net.Socket): void {
    if (this.conns.size >= MAX_CONNECTIONS) return void conn.destroy()
    this.conns.add(conn)
    let pacing: NodeJS.Timeout | null = null
    conn.on('close', () => {
      this.conns.delete(conn)
      if (pacing) clearTimeout(pacing)
    })
    conn.on('error', () => conn.destroy())
    let rest: Buffer | null = null
    let skipping = false
    conn.on('data', (chunk: Buffer) => {
      if (!pacing && chunk.length < SHORT_READ) {
        conn.pause()
        pacing = setTimeout(() => {
          pacing = null
          conn.resume()
        }, READ_EVERY_MS)
      }
      const buf: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk
      rest = null
      let start = 0
      for (let nl = buf.indexOf(NL, start); nl >= 0; nl = buf.indexOf(NL, start)) {
        if (skipping) skipping = false
        else if (nl + 1 - start > this.opts.maxLine) this.opts.onCutLine()
        else this.opts.onLine(buf.subarray(start, nl + 1))
        start = nl + 1
      }
      if (start === buf.length || skipping) return
      if (buf.length - start > this.opts.maxLine) {
        skipping = true
        this.opts.onCutLine()
      } else {
        rest = buf.subarray(start)
      }
    })
  }
}
