// Text that came from a berth server, made safe to print: each line rendered as a terminal would show it
// (supervision/log-lines.ts, the one renderer), and CI workflow commands at a line's start neutralised.

import { StringDecoder } from 'node:string_decoder'
import { Transform, type TransformCallback } from 'node:stream'
import { renderLine } from '../supervision/log-lines.js'

/**
 * `::error::`, `::add-mask::` (GitHub Actions) and `##vso[` / `##[` (Azure Pipelines) at the start of a
 * line, after any blanks, are commands to a CI runner reading the output; a space between the two marks
 * keeps the text readable and makes it no command.
 */
const WORKFLOW_COMMAND = /^(\s*)([:#])(\2)/

/** One or more lines of server text: escapes, cursor moves and control characters rendered, commands defused. */
export function safeText(text: string): string {
  return text
    .split('\n')
    .map((line) => renderLine(line).replace(WORKFLOW_COMMAND, '$1$2 $3'))
    .join('\n')
}

/** Every string of a parsed JSON answer through safeText (keys included); other values as they are. */
export function safeTree<T>(value: T): T {
  if (typeof value === 'string') return safeText(value) as T
  if (Array.isArray(value)) return value.map((v) => safeTree(v)) as T
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [safeText(k), safeTree(v)])) as T
  return value
}

/** A stream of server text (logs, metrics) made safe line by line; a last line without `\n` is flushed at the end. */
export function safeLines(): Transform {
  let rest = ''
  const utf8 = new StringDecoder('utf8')
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const text = rest + utf8.write(chunk)
      const end = text.lastIndexOf('\n')
      if (end < 0) {
        rest = text
        // A line that never ends (a hostile server) must not grow without bound.
        if (rest.length > 1024 * 1024) {
          done(null, safeText(rest))
          rest = ''
          return
        }
        return done()
      }
      rest = text.slice(end + 1)
      done(null, `${safeText(text.slice(0, end))}\n`)
    },
    flush(done: TransformCallback) {
      rest += utf8.end()
      done(null, rest ? safeText(rest) : undefined)
    },
  })
}
