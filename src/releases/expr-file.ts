// Carries an rpc expression to the running node without putting it on a command line: /proc/PID/cmdline is
// readable by every local user, and an expression may hold a secret (a password reset, a token). The
// expression goes into a 0400 file in the app's gate (DATA/apps/APP/expr), the app's with isolation; the command line only says "evaluate that file".

import crypto from 'node:crypto'
import fsSync from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { APP_NAME, type Paths } from '../paths.js'
import { KINDS, type ReleaseKind } from './kinds.js'

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

/** In the app's gate (DATA/apps/APP, which only berth writes): the node reads the file as the app's uid. */
function exprDir(paths: Paths, app: string): string {
  return path.join(paths.app(app), 'expr')
}

/** At agent start: files a berth killed during an rpc left behind go (they may hold a secret); also the old place. */
export function sweepExpressionFiles(paths: Paths): void {
  fsSync.rmSync(path.join(paths.dataDir, 'rpc-expr'), { recursive: true, force: true })
  let apps: string[] = []
  try {
    apps = fsSync.readdirSync(paths.apps)
  } catch {
    return
  }
  for (const app of apps) if (APP_NAME.test(app)) fsSync.rmSync(exprDir(paths, app), { recursive: true, force: true })
}

/**
 * Runs `fn` with the argument that evaluates `expr`, and removes the file after it, whatever happened. The file
 * is 0400 and, with isolation (`uid`), the app's: its node reads it; no other app's user can reach the directory.
 */
export async function withExpressionFile<T>(paths: Paths, app: string, uid: number | null, kind: ReleaseKind, expr: string, fn: (arg: string) => Promise<T>): Promise<T> {
  const dir = exprDir(paths, app)
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  // mkdir leaves the mode of a directory that exists alone: one made looser by hand is tightened.
  // With isolation the app's node must pass through: o+x only, as the app's gate keeps every other user out.
  await fs.chmod(dir, uid === null ? 0o700 : 0o711)
  const file = path.join(dir, `${crypto.randomBytes(12).toString('hex')}.${KINDS[kind].language === 'Elixir' ? 'exs' : 'erl'}`)
  const body = KINDS[kind].language === 'Erlang' && !/\.\s*$/.test(expr) ? `${expr}\n.` : expr
  const h = await fs.open(file, fsSync.constants.O_WRONLY | fsSync.constants.O_CREAT | fsSync.constants.O_EXCL | fsSync.constants.O_NOFOLLOW, 0o400)
  try {
    await h.writeFile(body)
    if (uid !== null) await h.chown(uid, uid)
  } finally {
    await h.close()
  }
  try {
    return await fn(evalFileArgument(kind, file))
  } finally {
    await fs.rm(file, { force: true })
  }
}
