// Whether a node has finished booting, asked of the node itself: init's status and the release's own
// applications, through the release's rpc command in the release's language; and the health URL's answer.
// Verification waits on these facts before its stable window starts (issue 23: "verified" means booted).

import fs from 'node:fs'
import path from 'node:path'
import { atomName, parseTerms, Tuple } from '../releases/terms.js'
import { sleep, type CommandResult } from '../process/proc.js'

/**
 * The applications a release's boot script starts that must be running once it has booted: those of its .rel
 * typed permanent or transient (permanent is the default). init reports `started` even when an application's
 * start failed (the boot script ignores the answer, and the node halts a moment later when application_controller
 * exits), so init's status alone is not the fact; these running is. null when the .rel cannot be read.
 */
export function bootApps(releaseDir: string): { file: string; apps: string[] } | null {
  try {
    const version = fs.readFileSync(path.join(releaseDir, 'releases', 'start_erl.data'), 'utf8').trim().split(/\s+/)[1]
    if (!version) return null
    const dir = path.join(releaseDir, 'releases', version)
    const name = fs.readdirSync(dir).find((f) => f.endsWith('.rel'))
    if (!name) return null
    const file = path.join(dir, name)
    const [rel] = parseTerms(fs.readFileSync(file, 'utf8'), file)
    const list = rel instanceof Tuple ? rel.items[3] : undefined
    if (!Array.isArray(list)) return null
    const apps: string[] = []
    for (const entry of list) {
      if (!(entry instanceof Tuple)) continue
      const app = atomName(entry.items[0])
      // {App, Vsn}, {App, Vsn, Type}, {App, Vsn, Incl} or {App, Vsn, Type, Incl}: Type is the atom, if any.
      const type = atomName(entry.items[2]) ?? 'permanent'
      if (app && (type === 'permanent' || type === 'transient')) apps.push(app)
    }
    return { file: path.relative(releaseDir, file), apps }
  } catch {
    return null
  }
}

function atom(name: string, language: 'Elixir' | 'Erlang'): string {
  if (/^[a-z][A-Za-z0-9_@]*$/.test(name)) return language === 'Elixir' ? `:${name}` : name
  const quoted = name.replace(/[\\'"]/g, (c) => `\\${c}`)
  return language === 'Elixir' ? `:"${quoted}"` : `'${quoted}'`
}

/**
 * The expression for the release's rpc command: `{Status, Missing}`, where Missing are the applications of
 * `apps` not running, asked only once init has started (application_controller is busy while it starts
 * them). Elixir's IO.inspect both prints it (Mix rpc shows only output) and returns it (Distillery's rpc
 * prints the value); relx's eval prints the value of an Erlang expression ended by a dot.
 */
export function bootQuery(language: 'Elixir' | 'Erlang', apps: string[]): string {
  const list = `[${apps.map((a) => atom(a, language)).join(', ')}]`
  if (language === 'Elixir') {
    return `IO.inspect(case :init.get_status() do {:started, _} -> {:started, ${list} -- Enum.map(:application.which_applications(), &elem(&1, 0))}; {s, _} -> {s, []} end)`
  }
  return `case init:get_status() of {started, _} -> {started, ${list} -- [A || {A, _, _} <- application:which_applications()]}; {S, _} -> {S, []} end.`
}

export interface BootAnswer {
  status: string
  missing: string[]
}

/** The node's answer to bootQuery in either language's printing, or null when the output holds none. */
export function parseBootAnswer(output: string): BootAnswer | null {
  const m = /\{:?(starting|started|stopping),\s*\[([^\]]*)\]\}/.exec(output)
  if (!m) return null
  const missing = m[2]!.split(',').map((s) => s.trim().replace(/^:/, '').replace(/^["']|["']$/g, '')).filter(Boolean)
  return { status: m[1]!, missing }
}

export type WaitOutcome = { ok: true; checks: number } | { ok: false; why: 'died' } | { ok: false; why: 'timeout'; last: string }

export interface BootWait {
  /** Runs the release's rpc command with the expression; the command's own timeout is `timeoutMs`. */
  ask(expr: string, timeoutMs: number): Promise<CommandResult>
  /** The node exited (its supervisor saw run_erl go). */
  died(): boolean
  /** Throws when the wait must end (berth is shutting down). */
  aborted(): void
  deadline: number
}

/** First pause between checks, growing by half up to MAX_PAUSE_MS: a fast boot is seen fast, a slow one is not hammered (each check starts a BEAM, 0.4 s or more). */
const FIRST_PAUSE_MS = 100
const MAX_PAUSE_MS = 500

/**
 * Asks the node until it says it has booted (init `started`, every application of `apps` running), it dies,
 * or the deadline passes. Every decision comes from an answer of the node or from its exit; the pauses only
 * space the questions.
 */
export async function waitForBoot(w: BootWait, language: 'Elixir' | 'Erlang', apps: string[]): Promise<WaitOutcome> {
  const expr = bootQuery(language, apps)
  let pause = FIRST_PAUSE_MS
  let last = 'no answer yet'
  for (let checks = 1; ; checks++) {
    if (w.died()) return { ok: false, why: 'died' }
    if (Date.now() > w.deadline) return { ok: false, why: 'timeout', last }
    w.aborted()
    const r = await w.ask(expr, Math.max(1000, Math.min(10_000, w.deadline - Date.now())))
    const answer = parseBootAnswer(r.output)
    if (answer?.status === 'started' && answer.missing.length === 0) {
      // The answer may have come from a node that died right after giving it: its exit decides.
      if (w.died()) return { ok: false, why: 'died' }
      return { ok: true, checks }
    }
    if (answer) last = answer.status === 'started' ? `init has started but these applications do not run: ${answer.missing.join(', ')}` : `init is ${answer.status}`
    else last = r.timedOut ? 'the rpc command timed out' : `the rpc command answered: ${oneLine(r.output) || `exit code ${r.code ?? r.signal}`}`
    await sleep(pause)
    pause = Math.min(MAX_PAUSE_MS, Math.round(pause * 1.5))
  }
}

/** Polls `url` until it answers 2xx; redirects are not followed (a 3xx is not healthy, and could lead off loopback). */
export async function waitForHealth(url: string, w: Omit<BootWait, 'ask'>, signal?: AbortSignal): Promise<WaitOutcome> {
  let last = 'no answer yet'
  let pause = FIRST_PAUSE_MS
  for (let checks = 1; ; checks++) {
    if (w.died()) return { ok: false, why: 'died' }
    if (Date.now() > w.deadline) return { ok: false, why: 'timeout', last }
    w.aborted()
    try {
      const res = await fetch(url, { redirect: 'manual', signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(2000)]) : AbortSignal.timeout(2000) })
      await res.body?.cancel()
      if (res.status >= 200 && res.status < 300) return { ok: true, checks }
      last = `HTTP ${res.status}`
    } catch (err) {
      last = (err as Error).message
    }
    await sleep(pause)
    pause = Math.min(MAX_PAUSE_MS, Math.round(pause * 1.5))
  }
}

function oneLine(s: string): string {
  const t = s.trim().replace(/\s+/g, ' ')
  return t.length > 200 ? `${t.slice(0, 200)}…` : t
}
