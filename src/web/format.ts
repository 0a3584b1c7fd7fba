// How the pages write times, durations, sizes, states and event details: plain functions of their input (and of
// `now`), free of DOM globals, so that test/web-format.test.ts runs them in node.

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-'
  const s = Math.floor(ms / 1000)
  if (s < 1) return `${ms} ms`
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`
}

/** "3 min 2 s ago"; a time in the future (a skewed clock) as the local date instead. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-'
  const ms = now - Date.parse(iso)
  return ms < 0 ? new Date(iso).toLocaleString() : `${duration(ms)} ago`
}

export function bytes(n: number | null | undefined): string {
  if (!n) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`
}

/** A step's time: how long it took, or how long it has run so far ("…"). */
export function stepTime(s: { startedAt: string; endedAt: string | null }, now = Date.now()): string {
  return s.endedAt ? duration(Date.parse(s.endedAt) - Date.parse(s.startedAt)) : `${duration(now - Date.parse(s.startedAt))}…`
}

/** A state as words: rolled_back → "rolled back". */
export function stateText(state: string): string {
  return state.replace('_', ' ')
}

/** An event's detail as key=value pairs with long values cut (the whole of it is in the cell's title). */
export function summary(detail: Record<string, unknown>): string {
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => {
      const text = typeof v === 'string' ? v : JSON.stringify(v)
      return `${k}=${text.length > 80 ? `${text.slice(0, 77)}...` : text}`
    })
    .join(' ')
}
