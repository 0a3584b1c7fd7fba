// Whether apps run as their own Unix users (BERTH_APP_ISOLATION, and the privilege to switch), and which uid each
// app has: one number per app, used as its uid and gid, taken from BERTH_APP_UIDS and recorded in DATA/app-users.json.

import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { NumberFile } from '../fsutil.js'
import type { Paths } from '../paths.js'
import { SETPRIV } from '../process/proc.js'

export type IsolationSetting = 'auto' | 'on' | 'off'

export interface IsolationState {
  /** on: every app process runs as the app's uid; off: turned off; unavailable: berth cannot switch users here. */
  mode: 'on' | 'off' | 'unavailable'
  /** In words, for the start log and /healthz. */
  reason: string
}

/** The capabilities switching users needs: CAP_CHOWN 0, CAP_KILL 5, CAP_SETGID 6, CAP_SETUID 7. */
const NEEDED: [string, number][] = [['CAP_CHOWN', 0], ['CAP_KILL', 5], ['CAP_SETGID', 6], ['CAP_SETUID', 7]]

/** The capabilities of `NEEDED` this process lacks, read from CapEff in /proc/self/status. */
export function missingCapabilities(status = readStatus()): string[] {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)
  const eff = m ? BigInt(`0x${m[1]}`) : 0n
  return NEEDED.filter(([, bit]) => (eff & (1n << BigInt(bit))) === 0n).map(([name]) => name)
}

function readStatus(): string {
  try {
    return fs.readFileSync('/proc/self/status', 'utf8')
  } catch {
    return ''
  }
}

/**
 * Decides isolation once, at start. `auto` is on wherever berth holds the four capabilities (root does) and
 * util-linux's setpriv exists; `on` without them refuses to start rather than run apps as berth unsaid.
 */
export function decideIsolation(setting: IsolationSetting, probe: { missing: string[]; setpriv: string | null } = { missing: missingCapabilities(), setpriv: SETPRIV }, dataDir?: string): IsolationState {
  if (setting === 'off') return { mode: 'off', reason: 'BERTH_APP_ISOLATION=off: every app runs as berth\'s own user, so any token that can run code (deploy, console, admin) reaches every app on this host' }
  const closed = dataDir ? closedAncestor(dataDir) : null
  const lacks = probe.missing.length > 0 ? `berth lacks ${probe.missing.join(', ')} (run it as root, or grant them as systemd/berth.service does)` : !probe.setpriv ? 'util-linux\'s setpriv is not installed (apt-get install util-linux)' : closed ? `${closed} is closed to other users (no x bit for others), so no app user could reach its release under the data directory; give it o+x or move the data directory` : null
  if (lacks) {
    if (setting === 'on') throw problem('ISOLATION_UNAVAILABLE', `BERTH_APP_ISOLATION=on, but apps cannot run as their own users here: ${lacks}.`)
    return { mode: 'unavailable', reason: `apps run as berth's own user: ${lacks}; any token that can run code reaches every app on this host` }
  }
  return { mode: 'on', reason: 'each app runs as its own uid (BERTH_APP_UIDS)' }
}

/** The first directory above the data directory that other users cannot pass through, or null. */
function closedAncestor(dataDir: string): string | null {
  let dir = path.dirname(path.resolve(dataDir))
  for (;;) {
    try {
      if ((fs.statSync(dir).mode & 0o001) === 0) return dir
    } catch {
      // not made yet: its mode will be berth's mkdir's
    }
    const up = path.dirname(dir)
    if (up === dir) return null
    dir = up
  }
}

export interface UidRange {
  first: number
  last: number
}

/** Numbers that /etc/passwd or /etc/group already give to someone: never handed to an app. */
function systemIds(): Set<number> {
  const taken = new Set<number>()
  for (const file of ['/etc/passwd', '/etc/group']) {
    let text = ''
    try {
      text = fs.readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n')) {
      const id = Number(line.split(':')[2])
      if (line && Number.isInteger(id)) taken.add(id)
    }
  }
  return taken
}

/**
 * Which uid each app runs as. An app keeps its number for good (its files carry it); a new app takes the first
 * free number from a per-data-directory offset, so two berths on one host with the same range rarely collide.
 */
export class AppUsers {
  private assigned: Record<string, number>
  private readonly store: NumberFile

  constructor(paths: Paths, private readonly range: UidRange, private readonly log: Logger) {
    this.store = new NumberFile(path.join(paths.dataDir, 'app-users.json'), 'uids', paths.dataDir, range.last - range.first + 1)
    this.assigned = this.store.read()
  }

  private write(): void {
    this.store.write(this.assigned)
  }

  /** The app's uid (= its gid), given now if it has none. */
  uidOf(app: string): number {
    const mine = this.assigned[app]
    if (mine !== undefined) return mine
    const used = new Set([...Object.values(this.assigned), ...systemIds()])
    const size = this.range.last - this.range.first + 1
    for (let i = 0; i < size; i++) {
      const uid = this.range.first + ((this.store.offset + i) % size)
      if (used.has(uid)) continue
      this.assigned[app] = uid
      this.write()
      this.log.info({ app, uid }, 'the app has a user of its own')
      return uid
    }
    throw problem('APP_UIDS_EXHAUSTED', `No uid of BERTH_APP_UIDS (${this.range.first}-${this.range.last}) is free for "${app}": each app needs one. Widen the range.`, { range: `${this.range.first}-${this.range.last}` })
  }
}
