// Who owns what under DATA/apps/APP: the gate (berth:APP 0750) and berth's own directories, the app's writable ones
// (APP:APP 0770; berth is a member of each app's group), and every write berth makes inside the app's, which it
// makes as the app. Also moves an install from before isolation to its app users, once per app.

import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { replaceFileSync } from '../fsutil.js'
import { SLOTS, type Paths, type Slot } from '../paths.js'
import type { AppLauncher } from './launch.js'

/**
 * The app's writable directories. berth reads what the app makes there (umask 007) through the app's group, of
 * which it is a member (launch.ts): no setgid bit, which systemd's RestrictSUIDSGID=yes would refuse to set.
 */
const APP_MODE = 0o770
/** Directories berth owns inside the gate: the app reads them, only berth writes. */
const BERTH_MODE = 0o750
const MARKER = '.isolated'

export class AppDirs {
  /** Apps whose gate and top directories were checked by this process (each is checked once per start). */
  private readonly prepared = new Map<string, number | null>()

  constructor(private readonly deps: { paths: Paths; launcher: AppLauncher; log: Logger }) {}

  get isolated(): boolean {
    return this.deps.launcher.isolated
  }

  /** The console log directory of an instance: with isolation a directory of the app's own (log/ is berth's). */
  consoleLogDir(app: string, slot: Slot | null): string {
    const log = this.deps.paths.log(app)
    return slot ? path.join(log, slot) : this.isolated ? path.join(log, 'node') : log
  }

  /**
   * The app's directories as isolation wants them: the gate and berth's log/ and instances/, and the app's
   * shared/ with its uid. An app from before isolation (no marker with its uid) gets its files chowned once,
   * logged; an interrupted pass is simply done again at the next start (each step is idempotent).
   */
  prepare(app: string): void {
    const { paths, launcher } = this.deps
    const uid = launcher.uidOf(app)
    if (this.prepared.get(app) === uid && fs.existsSync(paths.shared(app))) return
    if (uid === null) {
      for (const d of [paths.shared(app), path.join(paths.shared(app), 'tmp'), paths.log(app)]) fs.mkdirSync(d, { recursive: true, mode: 0o750 })
      fs.chmodSync(path.join(paths.shared(app), 'tmp'), 0o700)
      this.prepared.set(app, null)
      return
    }
    const me = process.getuid?.() ?? 0
    fs.mkdirSync(paths.apps, { recursive: true, mode: 0o751 })
    own(paths.app(app), me, uid, BERTH_MODE)
    own(paths.log(app), me, uid, BERTH_MODE)
    own(path.join(paths.app(app), 'instances'), me, uid, BERTH_MODE)
    own(paths.shared(app), uid, uid, APP_MODE)
    const marker = path.join(paths.app(app), MARKER)
    if (readMarker(marker) !== uid) {
      const started = Date.now()
      const n = this.chownApp(app, uid)
      fs.writeFileSync(`${marker}.tmp`, `${uid}\n`, { mode: 0o644 })
      fs.renameSync(`${marker}.tmp`, marker)
      this.deps.log.warn({ app, uid, files: n, ms: Date.now() - started }, "moved the app's files to its own user; a node still running from before keeps berth's user until its next restart")
    }
    this.mkdirs(app, [path.join(paths.shared(app), 'tmp')], 0o700)
    this.prepared.set(app, uid)
  }

  /** An instance's own directories (console log, pipe's parent, RELEASE_TMP), made and owned as the app's. */
  prepareInstance(app: string, slot: Slot | null, tmp: string): void {
    this.prepare(app)
    const uid = this.deps.launcher.uidOf(app)
    const log = this.consoleLogDir(app, slot)
    if (uid === null) {
      for (const d of [log, tmp]) fs.mkdirSync(d, { recursive: true, mode: 0o750 })
      fs.chmodSync(tmp, 0o700)
      return
    }
    if (log !== this.deps.paths.log(app)) own(log, uid, uid, APP_MODE)
    if (slot) own(this.deps.paths.instance(app, slot), uid, uid, APP_MODE)
    this.mkdirs(app, [tmp], 0o700)
  }

  /**
   * Directories inside the app's own (under shared/ or an instance's): made as the app, so a link it planted
   * cannot send berth's mkdir elsewhere. `mode` is applied to each, also to one that existed.
   */
  mkdirs(app: string, dirs: string[], mode = 0o770): void {
    if (!this.isolated) {
      for (const d of dirs) {
        fs.mkdirSync(d, { recursive: true, mode })
        fs.chmodSync(d, mode)
      }
      return
    }
    const uid = this.deps.launcher.uidOf(app)
    if (dirs.every((d) => isOwnDir(d, uid!, mode))) return
    this.deps.launcher.shAsApp(app, 'm=$1; shift; mkdir -p -- "$@" && chmod "$m" -- "$@"', [mode.toString(8), ...dirs])
  }

  /** Removes files or trees inside the app's own directories, as the app (a tree it controls may hold links). */
  remove(app: string, targets: string[]): void {
    if (targets.length === 0) return
    if (!this.isolated) {
      for (const t of targets) fs.rmSync(t, { recursive: true, force: true })
      return
    }
    this.deps.launcher.shAsApp(app, 'rm -rf -- "$@"', targets)
  }

  /**
   * Writes a file the app owns (its HOME's .erlang.cookie) with `mode`, replacing it whole; nothing when it
   * already holds `data` with that mode (and, with isolation, the app's uid): it is checked before every command.
   */
  writeFile(app: string, file: string, data: string, mode: number): void {
    const uid = this.deps.launcher.uidOf(app)
    try {
      const st = fs.lstatSync(file)
      if (st.isFile() && (uid === null || st.uid === uid) && (st.mode & 0o777) === mode && fs.readFileSync(file, 'utf8') === data) return
    } catch {
      // written below
    }
    if (uid === null) return replaceFileSync(file, data, mode)
    this.deps.launcher.shAsApp(app, 'rm -f -- "$2.tmp" && (umask 077 && cat > "$2.tmp") && chmod "$1" -- "$2.tmp" && mv -f -- "$2.tmp" "$2"', [mode.toString(8), file], data)
  }

  /** chown of what an install from before isolation left in the app's writable places; answers how many. */
  private chownApp(app: string, uid: number): number {
    const { paths } = this.deps
    const roots = [paths.shared(app), ...SLOTS.map((s) => paths.instance(app, s)), ...[null, ...SLOTS].map((s) => this.consoleLogDir(app, s))]
    let n = 0
    const walk = (p: string) => {
      let st: fs.Stats
      try {
        st = fs.lstatSync(p)
      } catch {
        return
      }
      // lchown: a link is changed itself, never what it points at. Group rw, so that berth keeps reading it.
      fs.lchownSync(p, uid, uid)
      n++
      if (!st.isSymbolicLink()) fs.chmodSync(p, (st.mode & 0o777) | (st.isDirectory() ? 0o070 : 0o060))
      if (!st.isDirectory()) return
      for (const e of fs.readdirSync(p)) walk(path.join(p, e))
    }
    for (const r of roots) walk(r)
    return n
  }
}

/**
 * A directory berth makes in a place only berth writes (the app cannot swap it for a link meanwhile), then owns
 * and modes through a descriptor opened without following links.
 */
function own(dir: string, uid: number, gid: number, mode: number): void {
  try {
    fs.mkdirSync(dir, { mode: mode & 0o777 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW)
  try {
    const st = fs.fstatSync(fd)
    // The mode first: once the directory is the app's, a berth without CAP_FOWNER could not change it.
    if ((st.mode & 0o7777) !== mode) fs.fchmodSync(fd, mode)
    if (st.uid !== uid || st.gid !== gid) fs.fchownSync(fd, uid, gid)
  } finally {
    fs.closeSync(fd)
  }
}

function isOwnDir(d: string, uid: number, mode: number): boolean {
  try {
    const st = fs.lstatSync(d)
    return st.isDirectory() && st.uid === uid && (st.mode & 0o777) === (mode & 0o777)
  } catch {
    return false
  }
}

/** The uid an app's files were moved to (its marker), read from disk: how a berth without its records knows it. */
export function appUidOnDisk(paths: Paths, app: string): number | null {
  return readMarker(path.join(paths.app(app), MARKER))
}

function readMarker(file: string): number | null {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim())
    return Number.isInteger(n) && n > 0 ? n : null
  } catch {
    return null
  }
}
