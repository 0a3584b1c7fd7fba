// Server-sent events as berth's /v1/events writes them, cut from a growing text buffer: complete blocks become
// { type, data } and the unfinished rest is kept for the next read. No DOM: test/web-sse.test.ts runs it in node.

export interface ServerEvent {
  type: string | undefined
  data: string | undefined
}

export function takeEvents(buffer: string): { events: ServerEvent[]; rest: string } {
  const events: ServerEvent[] = []
  let end: number
  while ((end = buffer.indexOf('\n\n')) >= 0) {
    const block = buffer.slice(0, end)
    buffer = buffer.slice(end + 2)
    events.push({ type: /^event: (.*)$/m.exec(block)?.[1], data: /^data: (.*)$/m.exec(block)?.[1] })
  }
  return { events, rest: buffer }
}

/** An `end` event that means the token itself is gone, so the page must sign out rather than reconnect. */
export function endsSignIn(e: ServerEvent): boolean {
  return e.type === 'end' && !!e.data && /revoked|expired/.test((JSON.parse(e.data) as { reason: string }).reason)
}
