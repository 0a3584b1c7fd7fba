// The terminal websocket protocol, one connection from upgrade to close: auth by header or first frame,
// resize and size checks, binary bytes both ways with backpressure, the exit frame, and close codes.
// What a session is and does lives in src/sessions; this module only speaks the protocol to it.

import type { WebSocket } from 'ws'
import type { TokenInfo } from '../auth/tokens.js'
import { type BerthError, isBerthError, problem } from '../errors.js'
import type { Session, TerminalSink } from '../sessions/manager.js'

/** How long a browser has to send {"type":"auth"} before the socket is closed. */
export const AUTH_FRAME_MS = 5000
const MAX_SIZE = 1000

export interface TerminalSocketDeps {
  /** Set when the upgrade request carried a valid Authorization header. */
  token: TokenInfo | null
  /** Checks a token sent in the auth frame; throws the problem to close with. */
  authorize(token: string): TokenInfo
  /** Opens the session behind the socket; throws the problem to close with. */
  open(token: TokenInfo, size: { cols: number; rows: number }, sink: TerminalSink): Promise<Session>
  /** For failures that are berth's own (not the client's). */
  logError(err: unknown): void
}

/** Close codes: 4000 + the HTTP status the same refusal would have had, so clients can tell them apart. */
export function closeWith(socket: WebSocket, err: BerthError): void {
  if (socket.readyState !== socket.OPEN) return
  socket.send(JSON.stringify({ type: 'error', code: err.code, status: err.status, detail: err.message }))
  // A close reason is limited to 123 bytes; the full sentence went in the error frame above.
  socket.close(4000 + err.status, Buffer.from(err.message).subarray(0, 120).toString())
}

function validSize(cols: number, rows: number): boolean {
  return Number.isInteger(cols) && Number.isInteger(rows) && cols > 0 && rows > 0 && cols <= MAX_SIZE && rows <= MAX_SIZE
}

export function serveTerminal(socket: WebSocket, deps: TerminalSocketDeps): void {
  let session: Session | null = null
  let closed = false
  let starting = false
  let size = { cols: 80, rows: 24 }
  // The send callback fires once ws has handed the frame to the socket: the moment to ask the session
  // whether the buffered amount is back under its low-water mark (public API instead of the raw socket).
  // One options object and one callback for every chunk, not two allocations per chunk.
  const binary = { binary: true }
  const sent = () => session?.drained()
  const sink: TerminalSink = {
    write: (d: Buffer) => socket.readyState === socket.OPEN && socket.send(d, binary, sent),
    bufferedAmount: () => socket.bufferedAmount,
    // The program caught up with a paste that was over the input limit: read the client's frames again.
    inputDrained: () => socket.resume(),
    exit: (code: number | null, reason: string, ended?: BerthError) => {
      // Input may be paused (see inputDrained): the client's close frame must still be read.
      socket.resume()
      // The token was revoked or expired: 4401 and the reason, like a refused token.
      if (ended) return closeWith(socket, ended)
      if (socket.readyState !== socket.OPEN) return
      socket.send(JSON.stringify({ type: 'exit', code, reason }))
      socket.close(1000, reason.slice(0, 120))
    },
  }
  const open = async (token: TokenInfo) => {
    starting = true
    try {
      const s = await deps.open(token, size, sink)
      session = s
      if (closed) await s.close('client closed')
    } catch (err) {
      closeWith(socket, isBerthError(err) ? err : problem('INTERNAL', 'The session could not be started; see the berth log.'))
      if (!isBerthError(err)) deps.logError(err)
    }
  }
  socket.on('close', () => {
    closed = true
    void session?.close('client closed')
  })
  let authTimer: NodeJS.Timeout | null = null
  if (deps.token) void open(deps.token)
  else authTimer = setTimeout(() => closeWith(socket, problem('UNAUTHORIZED', 'Send {"type":"auth","token":"..."} as the first frame within 5 seconds.')), AUTH_FRAME_MS)

  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      // Backpressure on input: a program that does not read (or a client that pastes megabytes) must not
      // make berth queue without limit; TCP holds the rest in the client until the pty has taken this.
      if (session?.input(data) === false) socket.pause()
      return
    }
    let msg: { type?: string; token?: string; cols?: number; rows?: number }
    try {
      msg = JSON.parse(data.toString('utf8')) as typeof msg
    } catch {
      return closeWith(socket, problem('VALIDATION_FAILED', 'Text frames must be JSON control messages: auth or resize.'))
    }
    if (msg.type === 'auth') {
      if (authTimer) clearTimeout(authTimer)
      authTimer = null
      if (session || starting) return
      try {
        void open(deps.authorize(msg.token ?? ''))
      } catch (err) {
        closeWith(socket, err as BerthError)
      }
    } else if (msg.type === 'resize') {
      const next = { cols: Number(msg.cols), rows: Number(msg.rows) }
      try {
        if (session) session.resize(next.cols, next.rows)
        else if (validSize(next.cols, next.rows)) size = next
      } catch (err) {
        closeWith(socket, err as BerthError)
      }
    }
  })
}
