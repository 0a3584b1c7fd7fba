// A small unified line diff for the config files a dry run compares (vm.args, sys.config, env.sh, ...).
// Bounded in time and size: config files are short, but a release may ship a large one.

/** Lines of the middle part (after common prefix and suffix) beyond which no LCS table is built. */
const MAX_LCS_CELLS = 4_000_000

export interface LineDiff {
  /** Unified diff text (`@@` hunks with 3 lines of context), cut at maxLines. */
  text: string
  added: number
  removed: number
  truncated: boolean
}

type Op = { kind: ' ' | '-' | '+'; line: string }

function splitLines(s: string): string[] {
  if (s === '') return []
  const lines = s.split('\n')
  if (lines.at(-1) === '') lines.pop()
  return lines
}

/** Edit script from a to b: common prefix and suffix trimmed, LCS on the middle while it is small enough. */
function editScript(a: string[], b: string[]): Op[] {
  let pre = 0
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++
  let suf = 0
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++
  const am = a.slice(pre, a.length - suf)
  const bm = b.slice(pre, b.length - suf)
  const ops: Op[] = a.slice(0, pre).map((line) => ({ kind: ' ', line }))
  const n = am.length
  const m = bm.length
  if (n * m > MAX_LCS_CELLS) {
    // Too large to align line by line: show the middle as replaced wholesale.
    for (const line of am) ops.push({ kind: '-', line })
    for (const line of bm) ops.push({ kind: '+', line })
  } else {
    const w = m + 1
    const lcs = new Uint32Array((n + 1) * w)
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i * w + j] = am[i] === bm[j] ? lcs[(i + 1) * w + j + 1]! + 1 : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!)
      }
    }
    let i = 0
    let j = 0
    while (i < n || j < m) {
      if (i < n && j < m && am[i] === bm[j]) {
        ops.push({ kind: ' ', line: am[i]! })
        i++
        j++
      } else if (i < n && (j === m || lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!)) {
        // Removals before additions on a tie, as diff(1) prints them.
        ops.push({ kind: '-', line: am[i++]! })
      } else {
        ops.push({ kind: '+', line: bm[j++]! })
      }
    }
  }
  for (const line of a.slice(a.length - suf)) ops.push({ kind: ' ', line })
  return ops
}

/** Unified diff of two texts; null when they are equal. Labels go on the ---/+++ lines. */
export function unifiedDiff(before: string, after: string, labels: { from: string; to: string }, opts: { context?: number; maxLines?: number; maxLineChars?: number } = {}): LineDiff | null {
  if (before === after) return null
  const context = opts.context ?? 3
  const maxLines = opts.maxLines ?? 60
  const maxLineChars = opts.maxLineChars ?? 200
  const ops = editScript(splitLines(before), splitLines(after))
  const out: string[] = [`--- ${labels.from}`, `+++ ${labels.to}`]
  let added = 0
  let removed = 0
  // Line numbers (1-based) in a and b at each op, for the hunk headers.
  const pos: { a: number; b: number }[] = []
  let la = 1
  let lb = 1
  for (const op of ops) {
    pos.push({ a: la, b: lb })
    if (op.kind !== '+') la++
    if (op.kind !== '-') lb++
    if (op.kind === '+') added++
    if (op.kind === '-') removed++
  }
  const changed = ops.map((o, i) => (o.kind === ' ' ? -1 : i)).filter((i) => i >= 0)
  let k = 0
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - context)
    let end = changed[k]!
    while (k + 1 < changed.length && changed[k + 1]! - end <= 2 * context) end = changed[++k]!
    end = Math.min(ops.length - 1, end + context)
    k++
    const hunk = ops.slice(start, end + 1)
    const aLen = hunk.filter((o) => o.kind !== '+').length
    const bLen = hunk.filter((o) => o.kind !== '-').length
    out.push(`@@ -${aLen === 0 ? pos[start]!.a - 1 : pos[start]!.a},${aLen} +${bLen === 0 ? pos[start]!.b - 1 : pos[start]!.b},${bLen} @@`)
    for (const o of hunk) out.push(o.kind + (o.line.length > maxLineChars ? `${o.line.slice(0, maxLineChars)}…` : o.line))
  }
  const truncated = out.length > maxLines
  const shown = truncated ? [...out.slice(0, maxLines), `... (${out.length - maxLines} more lines)`] : out
  return { text: `${shown.join('\n')}\n`, added, removed, truncated }
}
