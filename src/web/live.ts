// How the dashboard hears of changes: the audit event stream, read with fetch (EventSource cannot send the
// token), reconnected with backoff; while it is down the page polls, and after it is back it reads the state again.

import { apiRaw } from './api.js'
import { $ } from './dom.js'
import type { AuditEvent } from './schemas.js'
import { endsSignIn, takeEvents } from './sse.js'
import { state } from './state.js'

const POLL_MS = 5000

export interface LiveHandlers {
  onAudit: (e: AuditEvent) => void
  refreshAll: () => void
  signOut: (message: string) => void
}

export function startLive(on: LiveHandlers): void {
  stopLive()
  const ctl = new AbortController()
  state.stream = ctl
  let backoff = 1000
  const run = async () => {
    while (!ctl.signal.aborted) {
      try {
        const res = await apiRaw('/v1/events', { signal: ctl.signal })
        live('live', 'live: server-sent events')
        backoff = 1000
        await readEvents(res.body!, ctl.signal, on)
      } catch (err) {
        if (ctl.signal.aborted || (err as { status?: number }).status === 401) return
      }
      if (ctl.signal.aborted) return
      // Until the stream is back, poll; after reconnecting, read the state again (events may have been missed).
      live('polling', 'polling: the event stream is not available')
      startPolling(on.refreshAll)
      await new Promise((r) => setTimeout(r, backoff))
      backoff = Math.min(backoff * 2, 30_000)
      stopPolling()
      on.refreshAll()
    }
  }
  void run()
}

async function readEvents(body: ReadableStream<Uint8Array<ArrayBuffer>>, signal: AbortSignal, on: LiveHandlers): Promise<void> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true })
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    const { events, rest } = takeEvents(buffer + value)
    buffer = rest
    for (const e of events) {
      if (e.type === 'audit' && e.data) on.onAudit(JSON.parse(e.data) as AuditEvent)
      else if (endsSignIn(e)) return on.signOut('The token was revoked or expired; sign in again.')
    }
  }
}

function live(cls: string, title: string): void {
  const el = $('live')
  el.className = cls
  el.textContent = cls
  el.title = title
}

export function stopLive(): void {
  state.stream?.abort()
  state.stream = null
  stopPolling()
  live('', '')
}

function startPolling(refreshAll: () => void): void {
  stopPolling()
  state.poll = setInterval(refreshAll, POLL_MS)
}

function stopPolling(): void {
  if (state.poll) clearInterval(state.poll)
  state.poll = null
}
