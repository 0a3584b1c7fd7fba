// An asciicast recording (berth's console sessions) read for replay: its header and the events the player
// acts on, with the waits between them; no DOM, so test/web-cast.test.ts runs it in node.

export interface CastHeader {
  width?: number
  height?: number
}

/** What the player does next: write output after `waitMs`, or resize at once (the output after it was laid out for it). */
export type Frame = { kind: 'o'; waitMs: number; data: string } | { kind: 'r'; cols: number; rows: number }

/** Pauses longer than this are cut short: a session idle for minutes replays in seconds. */
export const MAX_PAUSE_S = 0.5

export function readCast(text: string): { header: CastHeader; frames: Frame[] } {
  const [header, ...events] = text.trim().split('\n').map((l) => JSON.parse(l)) as [CastHeader, ...[number, string, string][]]
  const frames: Frame[] = []
  let last = 0
  for (const [t, kind, data] of events) {
    if (kind !== 'o' && kind !== 'r') continue
    const wait = Math.min(Math.max(0, t - last), MAX_PAUSE_S) * 1000
    last = t
    if (kind === 'o') {
      frames.push({ kind, waitMs: wait, data })
      continue
    }
    // A resize is "COLSxROWS"; one in another form is skipped (the player used to print it as output).
    const size = /^(\d+)x(\d+)$/.exec(data)
    if (size) frames.push({ kind, cols: Number(size[1]), rows: Number(size[2]) })
  }
  return { header, frames }
}
