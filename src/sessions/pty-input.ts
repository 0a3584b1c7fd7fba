// Input into a pty, written to its master fd synchronously on receipt. node-pty's own write goes through
// fs.write, i.e. the libuv threadpool: a thread hop per keystroke, which is a good part of a console's echo time.

import fs from 'node:fs'
import type { IPty } from 'node-pty'

/** After the kernel's pty buffer was full (the program is not reading), when to try again. */
const RETRY_MS = 5
/** Queued input above which write() asks its caller to stop reading from the client (a paste, not typing). */
export const INPUT_HIGH_WATER_MARK = 64 * 1024

/**
 * node-pty 1.x's UnixTerminal: fd, and the read stream that owns it, destroyed (synchronously) the moment the
 * fd is closed, whether by destroy() or by the EIO that follows the program's exit. Not in its typings.
 */
type UnixPty = IPty & { fd?: unknown; _socket?: { destroyed?: unknown } }

/** A PtyInput for node-pty's pty, or null when its internals are not the known ones (then use pty.write). */
export function ptyInput(p: IPty, onDrain?: () => void): PtyInput | null {
  const { fd, _socket: owner } = p as UnixPty
  if (typeof fd !== 'number' || typeof owner?.destroyed !== 'boolean') return null
  return new PtyInput(fd, () => owner.destroyed === false, onDrain)
}

/**
 * Writes to a non-blocking pty master fd (node-pty opens it O_NONBLOCK, so a write never blocks the event
 * loop). What the kernel does not take at once is queued, in order, and retried on a short timer rather
 * than in a setImmediate loop that would spin while the program does not read.
 */
export class PtyInput {
  private queue: Buffer[] = []
  private timer: NodeJS.Timeout | null = null
  private closed = false
  /** write() answered false: onDrain is owed once the queue is empty again. */
  private full = false

  /**
   * isOpen must turn false as soon as the pty's owner closes the fd: after that its number may already belong
   * to another file or socket, and input must never go there.
   */
  constructor(
    private readonly fd: number,
    private readonly isOpen: () => boolean,
    private readonly onDrain?: () => void,
  ) {}

  /**
   * Like a stream's write: false when the queue is over INPUT_HIGH_WATER_MARK, and the caller should stop
   * reading input until onDrain. The data is taken either way, so nothing typed is lost.
   */
  write(data: Buffer | string): boolean {
    if (this.closed) return true
    const buf = typeof data === 'string' ? Buffer.from(data) : data
    if (buf.length === 0) return !this.full
    if (this.queue.length > 0) {
      // The kernel owns nothing of buf after this returns; ws may reuse its receive buffers.
      this.queue.push(Buffer.from(buf))
    } else {
      const n = this.tryWrite(buf)
      if (n < buf.length) {
        this.queue.push(Buffer.from(buf.subarray(n)))
        this.schedule()
      }
    }
    if (this.pending > INPUT_HIGH_WATER_MARK) this.full = true
    return !this.full
  }

  /** The pty is closing: what is still queued is dropped, as a hung-up terminal drops it. */
  close(): void {
    this.closed = true
    this.queue = []
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  /** Bytes waiting for the program to read. */
  get pending(): number {
    let n = 0
    for (const b of this.queue) n += b.length
    return n
  }

  /** Bytes the kernel took: all, some, or none when its buffer is full; all of them (dropped) once the pty is gone. */
  private tryWrite(buf: Buffer): number {
    if (!this.isOpen()) {
      this.close()
      return buf.length
    }
    try {
      return fs.writeSync(this.fd, buf)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR') return 0
      // EIO/EBADF: the program or the pty is gone; the session's exit is on its way.
      this.close()
      return buf.length
    }
  }

  private schedule(): void {
    if (this.timer || this.closed) return
    this.timer = setTimeout(() => {
      this.timer = null
      this.flush()
    }, RETRY_MS)
    // The pty keeps the process alive while it is open; a retry alone must not.
    this.timer.unref()
  }

  private flush(): void {
    while (this.queue.length > 0 && !this.closed) {
      const head = this.queue[0]!
      const n = this.tryWrite(head)
      if (this.closed) return
      if (n < head.length) {
        this.queue[0] = head.subarray(n)
        this.schedule()
        return
      }
      this.queue.shift()
    }
    if (this.full && this.queue.length === 0 && !this.closed) {
      this.full = false
      this.onDrain?.()
    }
  }
}
