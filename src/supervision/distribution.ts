// Distribution of the nodes berth runs, without epmd: each instance's node name, its own listen port from the
// range berth records (BERTH_DIST_PORTS, apps' assignments in DATA/dist-ports.json), the app's own cookie, and
// the environment that makes a node, or a command reaching it, use them for each kind of release.

import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { NumberFile, replaceFileSync } from '../fsutil.js'
import type { Paths, Slot } from '../paths.js'
import { canListen } from '../process/listen.js'
import type { ReleaseKind } from '../releases/kinds.js'

/** Node names are slot state: instances/names.ts owns them. */
export { nodeName } from '../instances/names.js'

/** The key an instance's port is recorded under: the proxy-off node, or one slot of a proxied app. */
function portKey(app: string, slot: Slot | null): string {
  return slot ? `${app}/${slot}` : app
}

export interface PortRange {
  first: number
  last: number
}

/**
 * Which distribution port each instance listens on. A node started with `-erl_epmd_port P -start_epmd false`
 * listens on P and asks no epmd; a command reaches it on the same P. Ports stay with their instance across
 * restarts (a firewall rule or an operator's note stays right); one found taken by another program when its
 * node starts is replaced by the next free one, and said so.
 */
export class DistPorts {
  private assigned: Record<string, number>
  /** Also where a first assignment starts looking (per data directory, so two agents rarely race for one port). */
  private readonly store: NumberFile

  constructor(paths: Paths, private readonly range: PortRange, private readonly log: Logger) {
    this.store = new NumberFile(path.join(paths.dataDir, 'dist-ports.json'), 'ports', paths.dataDir, range.last - range.first + 1)
    this.assigned = this.store.read()
  }

  private write(): void {
    this.store.write(this.assigned)
  }

  /** The port the instance's node was started on; null when berth never started it with one (see legacy). */
  portOf(app: string, slot: Slot | null): number | null {
    return this.assigned[portKey(app, slot)] ?? null
  }

  /** The port to start the instance's node on: its own, unless another program holds it now. */
  async claim(app: string, slot: Slot | null): Promise<number> {
    const key = portKey(app, slot)
    const mine = this.assigned[key]
    if (mine !== undefined && mine >= this.range.first && mine <= this.range.last && (await canListen(mine))) return mine
    const others = new Set(Object.entries(this.assigned).filter(([k]) => k !== key).map(([, p]) => p))
    const size = this.range.last - this.range.first + 1
    for (let i = 0; i < size; i++) {
      const p = this.range.first + ((this.store.offset + i) % size)
      if (others.has(p) || !(await canListen(p))) continue
      if (mine !== undefined) this.log.warn({ app, slot, was: mine, port: p }, 'the distribution port of this instance was taken by another program: it moves')
      this.assigned[key] = p
      this.write()
      return p
    }
    throw problem('DIST_PORTS_EXHAUSTED', `No port of BERTH_DIST_PORTS (${this.range.first}-${this.range.last}) is free for the node of "${app}"${slot ? ` (slot ${slot})` : ''}: each node, and each slot of a proxied app, needs one. Widen the range, or free a port in it.`, { range: `${this.range.first}-${this.range.last}` })
  }
}

/**
 * The app's own distribution cookie, made once. berth's copy is DATA/apps/APP/cookie (0600, in the app's gate,
 * which only berth writes); the node reads the copy in its HOME, shared/.erlang.cookie (0400, the app's), which
 * node-runs.ts writes: Erlang reads that file wherever no single -setcookie wins. Two apps running one release,
 * whose releases/COOKIE is the same file's content, must not be able to reach each other's nodes.
 */
export function appCookie(paths: Paths, app: string): string {
  const file = path.join(paths.app(app), 'cookie')
  for (const f of [file, path.join(paths.shared(app), '.erlang.cookie')]) {
    try {
      // The HOME copy only for an install from before berth kept its own (the app's nodes have that cookie),
      // and only as berth wrote it then: a file the app made (or a link it planted) must not pick its cookie.
      const st = fs.lstatSync(f)
      if (f !== file && (!st.isFile() || st.uid !== process.getuid?.())) continue
      const c = fs.readFileSync(f, 'utf8').trim()
      if (!/^[A-Z0-9]{32,}$/.test(c)) continue
      if (f !== file) keep(file, c)
      return c
    } catch {
      // made below
    }
  }
  const cookie = Array.from(crypto.randomBytes(32), (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'[b % 36]).join('')
  keep(file, cookie)
  return cookie
}

function keep(file: string, cookie: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 })
  replaceFileSync(file, cookie, 0o600)
}

/**
 * What stands on command lines in place of the cookie. Erlang's auth reads `-setcookie` only when it is given
 * once; given twice it falls back to $HOME/.erlang.cookie (OTP's auth:init_cookie), the app's own 0400 file.
 * With apps as separate users that matters: `ps` shows every user every command line, and a cookie seen there
 * opens the node to anyone who can reach its loopback port.
 */
export const DECOY = 'berth-cookie-is-in-HOME'

export interface DistEnv {
  /** Flags for ERL_AFLAGS, after berth's loopback rule and before the app's own. */
  aflags: string[]
  env: Record<string, string>
}

/**
 * What a node (`role: 'node'`) or a command reaching it (`'command'`: rpc, pid, stop, remote, eval) needs to
 * use distribution on `port` with the app's cookie, with no epmd anywhere. null port: the instance was started
 * by a berth from before ports (it registered with epmd and has its release's cookie), so commands reach it the
 * old way until it restarts; nothing is set then but `-start_epmd false` for commands, so that no command
 * starts an epmd that would inherit the app's environment (it does not stop one the old node started).
 */
export function distEnv(kind: ReleaseKind, role: 'node' | 'command', port: number | null, cookie: string): DistEnv {
  if (port === null) return { aflags: role === 'command' ? ['-start_epmd false'] : [], env: {} }
  if (kind === 'relx') {
    // relx's script does it itself from ERL_DIST_PORT: -erl_epmd_port and -start_epmd false for the node and
    // remote_console, erl_call -address for pid/stop/eval. Its cookie is RELX_COOKIE for the script; the node
    // reads -setcookie from vm.args, so one is added here: with two, Erlang takes neither and reads
    // $HOME/.erlang.cookie, the same cookie (test/staging.test.ts checks the node's). -start_epmd false also
    // keeps the erlexec the script runs to learn the host name from starting an epmd.
    // The one added is a decoy (see DECOY): the node's command line, which `ps` shows every local user, never
    // holds the app's cookie. relx's erl_call commands (pid, stop, rpc) still pass RELX_COOKIE as -c: short-lived.
    return { aflags: ['-start_epmd false', `-setcookie ${DECOY}`], env: { ERL_DIST_PORT: String(port), RELX_COOKIE: cookie } }
  }
  // Mix (and Distillery, unknown): the start script passes RELEASE_COOKIE as --cookie. A command's node must not
  // listen on the target's port (it could not: the node holds it): -dist_listen false, which also hides it.
  // Its --cookie gets the decoy, and ERL_AFLAGS a second one: with two -setcookie Erlang takes neither and
  // reads $HOME/.erlang.cookie, the app's (node-runs.ts writes it), so no command line ever shows the cookie.
  const aflags = ['-start_epmd false', `-erl_epmd_port ${port}`, `-setcookie ${DECOY}`, ...(role === 'command' ? ['-dist_listen false'] : [])]
  return { aflags, env: { RELEASE_COOKIE: DECOY } }
}
