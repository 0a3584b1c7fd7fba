// The kinds of release berth runs (Mix, relx/rebar3, Distillery 2.x): how each is told apart from its start
// script and layout, which subcommand of bin/NAME does each thing berth needs, and the words for when one
// does not exist. The app's `commands` setting overrides a kind's names one by one.

import fs from 'node:fs'
import path from 'node:path'
import { problem } from '../errors.js'
import type { ReleaseKind } from '../store/releases.js'

export type { ReleaseKind } from '../store/releases.js'

/** What berth asks of a release: start under run_erl with a console, eval before start, rpc, remote, stop, pid. */
export const COMMAND_ROLES = ['start', 'eval', 'rpc', 'remote', 'stop', 'pid'] as const
export type CommandRole = (typeof COMMAND_ROLES)[number]
export type CommandMap = Record<CommandRole, string>
/** A kind's commands; null where the kind has none that does what berth needs. */
export type KindCommands = Record<CommandRole, string | null>

interface KindProfile {
  label: string
  commands: KindCommands
  /** Why a role has no command, for errors and warnings. */
  missing: Partial<Record<CommandRole, string>>
  /** The language eval and rpc expressions are written in. */
  language: 'Elixir' | 'Erlang'
  /** Subcommands its start script has, to name a mistyped override in errors; empty: berth cannot tell. */
  known: string[]
}

const MIX: KindCommands = { start: 'start_iex', eval: 'eval', rpc: 'rpc', remote: 'remote', stop: 'stop', pid: 'pid' }

export const KINDS: Record<ReleaseKind, KindProfile> = {
  mix: {
    label: 'Mix release',
    commands: MIX,
    missing: {},
    language: 'Elixir',
    known: ['start', 'start_iex', 'daemon', 'daemon_iex', 'eval', 'rpc', 'remote', 'restart', 'stop', 'pid', 'version'],
  },
  relx: {
    label: 'relx (rebar3) release',
    // `console` rather than `foreground`: foreground runs with -noinput, so to_erl would attach to a console
    // that takes no input. relx's `rpc` takes Mod Fun Args, its `eval` an Erlang expression on the running node.
    commands: { start: 'console', eval: null, rpc: 'eval', remote: 'remote_console', stop: 'stop', pid: 'pid' },
    missing: {
      eval: "relx's eval talks to the running node, so a relx release has no command that evaluates an expression before it starts",
    },
    language: 'Erlang',
    known: ['foreground', 'console', 'console_clean', 'console_boot', 'daemon', 'daemon_attach', 'attach', 'start', 'remote_console', 'remote', 'remsh', 'rpc', 'rpcterms', 'eval', 'status', 'ping', 'stop', 'restart', 'reboot', 'pid', 'escript', 'upgrade', 'downgrade', 'install', 'unpack', 'uninstall', 'versions'],
  },
  distillery: {
    label: 'Distillery release',
    // Distillery 2's eval runs the expression in a fresh node with the release's code (apps not started),
    // which is what a migration before start needs; rpc runs on the running node.
    commands: { start: 'console', eval: 'eval', rpc: 'rpc', remote: 'remote_console', stop: 'stop', pid: 'pid' },
    missing: {},
    language: 'Elixir',
    // Custom commands (releases/VSN/commands/*.sh) come on top of these, so berth never refuses a name.
    known: [],
  },
  unknown: { label: 'release of unknown kind', commands: MIX, missing: {}, language: 'Elixir', known: [] },
}

function head(file: string): string {
  try {
    const fd = fs.openSync(file, 'r')
    try {
      const buf = Buffer.alloc(64 * 1024)
      return buf.toString('utf8', 0, fs.readSync(fd, buf, 0, buf.length, 0))
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    return ''
  }
}

/**
 * What built the release at `root` (named `name`, at `version`): Distillery 2.x ships releases/VSN/libexec
 * and a releases/VSN/NAME.sh its bin/NAME execs; Mix's bin/NAME sets RELEASE_COMMAND; relx's extended start
 * script is full of relx_* functions and RELX_* variables.
 */
export function detectKind(root: string, name: string, version: string): ReleaseKind {
  const rel = path.join(root, 'releases', version)
  const script = head(path.join(root, 'bin', name))
  if (fs.existsSync(path.join(rel, 'libexec')) || (fs.existsSync(path.join(rel, `${name}.sh`)) && script.includes('.sh'))) return 'distillery'
  if (/^RELEASE_COMMAND=/m.test(script)) return 'mix'
  if (/\brelx_[a-z_]+\(\)|\bRELX_[A-Z_]+/.test(script)) return 'relx'
  return 'unknown'
}

/** The kind's commands with the app's overrides applied. */
export function resolveCommands(kind: ReleaseKind, overrides: Partial<CommandMap>): KindCommands {
  return { ...KINDS[kind].commands, ...overrides }
}

/** The subcommand for `role`, or COMMAND_UNSUPPORTED saying why this kind has none and what to set. */
export function commandFor(kind: ReleaseKind, overrides: Partial<CommandMap>, role: CommandRole, app: string): string {
  const name = resolveCommands(kind, overrides)[role]
  if (name) return name
  const p = KINDS[kind]
  const why = p.missing[role] ?? `a ${p.label} has no "${role}" command berth knows`
  throw problem('COMMAND_UNSUPPORTED', `${why}; set the app's commands.${role} setting to a bin/${app} subcommand that does it (PUT /v1/apps/${app}/settings).`, { kind, command: role })
}

/** A sentence for errors when a command failed and its name is not one the kind's start script has. */
export function unknownCommandHint(kind: ReleaseKind, name: string, app: string, role: CommandRole): string {
  const { known, label } = KINDS[kind]
  if (known.length === 0 || known.includes(name)) return ''
  return `; "${name}" is not a command of bin/${app} in a ${label} (it has ${known.join(', ')}): check the commands.${role} setting`
}

/**
 * Why a command that exited 0 still failed, or null: relx's eval (erl_call) and rpc print `{badrpc, Reason}`
 * or `{error, "*** ..."}` and exit 0 when the call failed on the node; Distillery prints `{:badrpc, ...}`.
 */
export function failedAnswer(output: string): string | null {
  const answer = output.trim()
  const shown = answer.length > 300 ? `${answer.slice(0, 300)}…` : answer
  if (/^\{:?badrpc,/.test(answer)) return `the node answered ${shown}: the call failed on the node or did not reach it`
  if (/^\{error, ?"\*\*\* /.test(answer)) return `the expression failed on the node: ${shown}`
  return null
}
