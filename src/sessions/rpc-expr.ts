// Carries an rpc expression to the running node without putting it on a command line: /proc/PID/cmdline is
// readable by every local user, and an expression may hold a secret (a password reset, a token). The
// expression goes into a 0600 file in berth's own 0700 directory; the command line only says "evaluate that file".

import crypto from 'node:crypto'
import fsSync from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import type { Paths } from '../paths.js'
import { KINDS, type ReleaseKind } from '../releases/kinds.js'

/** An Elixir string literal: no interpolation, whatever the data directory's path holds. */
function elixirString(s: string): string {
  return `"${s.replace(/[\\"#]/g, (c) => `\\${c}`)}"`
}

/** An Erlang string literal. */
function erlangString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`
}

/**
 * The argument of the rpc command that evaluates the file on the node, in the release's language. The node
 * reads it (the same user as berth, on the same host). Erlang's parser needs the final dot, which users
 * of relx's eval are used to writing; one is added when it is missing.
 */
export function evalFileArgument(kind: ReleaseKind, file: string): string {
  if (KINDS[kind].language === 'Elixir') return `Code.eval_file(${elixirString(file)})`
  const f = erlangString(file)
  return `{ok, B} = file:read_file(${f}), {ok, T, _} = erl_scan:string(unicode:characters_to_list(B)), {ok, E} = erl_parse:parse_exprs(T), {value, V, _} = erl_eval:exprs(E, []), V.`
}

/** Apart from DATA/run, whose sweep takes every entry for a command record. */
function exprDir(paths: Paths): string {
  return path.join(paths.dataDir, 'rpc-expr')
}

/** At agent start: files a berth killed during an rpc left behind go (they may hold a secret). */
export function sweepExpressionFiles(paths: Paths): void {
  fsSync.rmSync(exprDir(paths), { recursive: true, force: true })
}

/** Runs `fn` with the argument that evaluates `expr`, and removes the file after it, whatever happened. */
export async function withExpressionFile<T>(paths: Paths, kind: ReleaseKind, expr: string, fn: (arg: string) => Promise<T>): Promise<T> {
  const dir = exprDir(paths)
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  // mkdir leaves the mode of a directory that exists alone: one made looser by hand is tightened.
  await fs.chmod(dir, 0o700)
  const file = path.join(dir, `${crypto.randomBytes(12).toString('hex')}.${KINDS[kind].language === 'Elixir' ? 'exs' : 'erl'}`)
  const body = KINDS[kind].language === 'Erlang' && !/\.\s*$/.test(expr) ? `${expr}\n.` : expr
  await fs.writeFile(file, body, { mode: 0o600, flag: 'wx' })
  try {
    return await fn(evalFileArgument(kind, file))
  } finally {
    await fs.rm(file, { force: true })
  }
}
