// Output helpers shared by the client commands: aligned tables, byte sizes, durations and ages, so every
// command prints numbers the same way (decimal units, like the MB/s of a progress line).

/** Left-aligned columns separated by two spaces; the first row is the header. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return ''
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => `${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`).join('')
}

/** `key  value` lines with the keys aligned, for one object's details. */
export function details(pairs: [string, string][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length))
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}\n`).join('')
}

export function bytes(n: number): string {
  if (n < 1000) return `${n} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let v = n
  let u = -1
  do {
    v /= 1000
    u++
  } while (v >= 1000 && u < units.length - 1)
  return `${v.toFixed(1)} ${units[u]}`
}

export function rate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`
}

/** Short durations with two decimals (`0.43 s`), longer ones in the two largest units (`3 min 12 s`). */
export function duration(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(2)} s`
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s} s`
  const parts: [number, string][] = [
    [Math.floor(s / 86400), 'd'],
    [Math.floor((s % 86400) / 3600), 'h'],
    [Math.floor((s % 3600) / 60), 'min'],
    [s % 60, 's'],
  ]
  const first = parts.findIndex(([v]) => v > 0)
  return parts
    .slice(first, first + 2)
    .filter(([v]) => v > 0)
    .map(([v, u]) => `${v} ${u}`)
    .join(' ')
}

/** `2026-11-25 12:21` in local time plus how long ago, e.g. `2026-11-25 12:21 (3 min ago)`. */
export function when(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-'
  const t = new Date(iso)
  if (Number.isNaN(t.getTime())) return iso
  const pad = (n: number) => String(n).padStart(2, '0')
  const local = `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}`
  const ago = now - t.getTime()
  return ago >= 0 ? `${local} (${duration(ago)} ago)` : local
}

/** Seconds between two timestamps of the server, or null when one is missing. */
export function between(start: string | null | undefined, end: string | null | undefined): number | null {
  if (!start || !end) return null
  const ms = new Date(end).getTime() - new Date(start).getTime()
  return Number.isFinite(ms) ? ms : null
}
