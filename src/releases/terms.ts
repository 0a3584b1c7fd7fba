// Reads the Erlang term files a release ships (releases/VSN/NAME.rel, lib/APP-VSN/ebin/APP.app) as `~p`
// writes them: atoms, strings, numbers, chars, tuples, lists, binaries and maps. Anything else (pids, funs)
// is refused with the file named, never guessed.

import { problem } from '../errors.js'

export class Atom {
  constructor(readonly name: string) {}
}

export class Tuple {
  constructor(readonly items: Term[]) {}
}

export class MapTerm {
  constructor(readonly entries: [Term, Term][]) {}
}

/** A binary's text (`<<"ok">>`) is a string; other binaries keep their bytes. */
export type Term = Atom | Tuple | MapTerm | Term[] | string | number | Buffer

const TOKEN = /\s+|%[^\n]*|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([a-z][A-Za-z0-9_@]*)|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|\$(\\?.)|(<<|>>|#\{|=>|[{}[\],.:/])/y

/** Punctuation, kept apart from string terms (a string "," is not a comma). */
class Punct {
  constructor(readonly p: string) {}
}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r', s: ' ' })[c] ?? c)
}

/** The terms of a file of `Term.` forms, e.g. the one tuple of an .app file. */
export function parseTerms(text: string, file: string): Term[] {
  const tokens: (Term | Punct)[] = []
  const is = (t: Term | Punct | undefined, p: string) => t instanceof Punct && t.p === p
  TOKEN.lastIndex = 0
  while (TOKEN.lastIndex < text.length) {
    const at = TOKEN.lastIndex
    const m = TOKEN.exec(text)
    if (!m) throw problem('RELEASE_INVALID', `${file}: cannot read the Erlang term at offset ${at} ("${text.slice(at, at + 20)}").`)
    if (m[1] !== undefined) tokens.push(new Atom(unescape(m[1])))
    else if (m[2] !== undefined) tokens.push(unescape(m[2]))
    else if (m[3] !== undefined) tokens.push(new Atom(m[3]))
    else if (m[4] !== undefined) tokens.push(Number(m[4]))
    else if (m[5] !== undefined) tokens.push(unescape(m[5]).codePointAt(0)!)
    else if (m[6] !== undefined) tokens.push(new Punct(m[6]))
  }
  let i = 0
  const fail = (what: string) => problem('RELEASE_INVALID', `${file}: ${what} in its Erlang terms.`)
  const seq = (close: string): Term[] => {
    const items: Term[] = []
    if (is(tokens[i], close)) return i++, items
    for (;;) {
      items.push(term())
      const t = tokens[i++]
      if (is(t, close)) return items
      if (!is(t, ',')) throw fail(`expected "," or "${close}"`)
    }
  }
  // <<"text">>, <<"é"/utf8>>, <<1,2,3>>, <<1:4>>: text segments make a string, bytes a Buffer.
  const binary = (): Term => {
    const parts: (string | number)[] = []
    if (is(tokens[i], '>>')) return i++, ''
    for (;;) {
      const seg = tokens[i++]
      if (typeof seg !== 'string' && typeof seg !== 'number') throw fail('a binary segment that is not a string or an integer')
      parts.push(seg)
      while (is(tokens[i], ':') || is(tokens[i], '/')) i += 2
      const t = tokens[i++]
      if (is(t, '>>')) break
      if (!is(t, ',')) throw fail('expected "," or ">>" in a binary')
    }
    return parts.every((p) => typeof p === 'string') ? parts.join('') : Buffer.from(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p)] : [p & 0xff])))
  }
  const map = (): MapTerm => {
    const entries: [Term, Term][] = []
    if (is(tokens[i], '}')) return i++, new MapTerm(entries)
    for (;;) {
      const k = term()
      if (!is(tokens[i++], '=>')) throw fail('expected "=>" in a map')
      entries.push([k, term()])
      const t = tokens[i++]
      if (is(t, '}')) return new MapTerm(entries)
      if (!is(t, ',')) throw fail('expected "," or "}" in a map')
    }
  }
  const term = (): Term => {
    const t = tokens[i++]
    if (is(t, '{')) return new Tuple(seq('}'))
    if (is(t, '[')) return seq(']')
    if (is(t, '<<')) return binary()
    if (is(t, '#{')) return map()
    if (t === undefined || t instanceof Punct) throw fail('unexpected end or punctuation')
    return t
  }
  const out: Term[] = []
  while (i < tokens.length) {
    out.push(term())
    if (!is(tokens[i++], '.')) throw fail('a term not ended by "."')
  }
  return out
}

export function atomName(t: Term | undefined): string | null {
  return t instanceof Atom ? t.name : null
}

/** The value of `{Key, Value}` in a property list, e.g. `modules` in an .app file's list. */
export function prop(list: Term | undefined, key: string): Term | undefined {
  if (!Array.isArray(list)) return undefined
  for (const t of list) if (t instanceof Tuple && atomName(t.items[0]) === key) return t.items[1]
  return undefined
}
