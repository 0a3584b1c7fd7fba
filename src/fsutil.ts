// Small filesystem primitives with the durability and safety guarantees the rest of berth relies on:
// fsync of directories after renames, removal of read-only trees, exclusive creation of secret files.

import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import fsSync, { constants } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** fsync a directory so that a rename or creation inside it survives power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Removes a tree that may have been made read-only (releases are), without following symlinks out of it. */
export async function removeTree(target: string): Promise<void> {
  try {
    await fs.rm(target, { recursive: true, force: true })
    return
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES' && (err as NodeJS.ErrnoException).code !== 'EPERM') throw err
  }
  // Not root: directories are 0555, so give write back to the owner first.
  await makeWritable(target)
  await fs.rm(target, { recursive: true, force: true })
}

async function makeWritable(dir: string): Promise<void> {
  const st = await fs.lstat(dir).catch(() => null)
  if (!st || !st.isDirectory()) return
  await fs.chmod(dir, 0o700)
  for (const name of await fs.readdir(dir)) await makeWritable(path.join(dir, name))
}

/** A new hidden name next to `file`, on its filesystem, so that a rename onto `file` is atomic. */
function tempBeside(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`)
}

/** Replaces `file` through a synced temporary file and a rename, so a crash leaves the old or the new file. */
export async function replaceFile(file: string, data: string, mode: number): Promise<void> {
  const tmp = tempBeside(file)
  const fh = await fs.open(tmp, 'wx', mode)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await fs.rename(tmp, file)
  } catch (err) {
    await fs.rm(tmp, { force: true })
    throw err
  }
  await fsyncDir(path.dirname(file))
}

/**
 * replaceFile for callers that must not yield between deciding and recording (the proxy's state is written
 * inside synchronous bookkeeping): the same synced temporary file, rename and directory fsync.
 */
export function replaceFileSync(file: string, data: string, mode: number): void {
  const tmp = tempBeside(file)
  const fd = fsSync.openSync(tmp, 'wx', mode)
  try {
    fsSync.writeFileSync(fd, data)
    fsSync.fsyncSync(fd)
  } finally {
    fsSync.closeSync(fd)
  }
  try {
    fsSync.renameSync(tmp, file)
  } catch (err) {
    fsSync.rmSync(tmp, { force: true })
    throw err
  }
  const dirFd = fsSync.openSync(path.dirname(file), constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    fsSync.fsyncSync(dirFd)
  } finally {
    fsSync.closeSync(dirFd)
  }
}

/** Writes a file that must not already exist, with the given mode, and syncs it and its directory. */
export async function writeNewFile(file: string, data: string, mode: number): Promise<void> {
  const fh = await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await fsyncDir(path.dirname(file))
}

/**
 * syncfs(2) of the filesystem that holds `dir`, through coreutils `sync -f` (Node has no binding): one call
 * writes back every dirty file and directory there and flushes the disk cache, where an fsync per file pays
 * a flush each. True when it succeeded; false when it cannot be relied on, so that the caller fsyncs each
 * file instead: no `sync` binary, a failure or timeout, or a kernel older than 5.8, whose syncfs did not
 * report writeback errors. From 5.8 on, an error nobody has seen yet is reported to the next syncfs caller.
 */
export function syncFilesystem(dir: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  if (!SYNCFS_REPORTS_ERRORS || signal?.aborted) return Promise.resolve(false)
  return new Promise((resolve) => {
    // The signal is the owner's (an upload's): when it is given up, its sync is ended too, not left running.
    execFile('sync', ['-f', dir], { timeout: timeoutMs, killSignal: 'SIGKILL', env: { PATH: SYNC_PATH }, signal }, (err) => resolve(!err))
  })
}

const SYNC_PATH = '/usr/bin:/bin'

const SYNCFS_REPORTS_ERRORS = (() => {
  const [major = 0, minor = 0] = os.release().split('.').map((n) => parseInt(n, 10))
  return process.platform === 'linux' && (major > 5 || (major === 5 && minor >= 8))
})()

export async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false)
}

/**
 * Waits for `p` unless `signal` aborts first. Unlike Promise.race against a long-lived promise, it removes
 * its listener when `p` settles: racing a never-settling promise once per chunk keeps every chunk alive.
 */
export function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

/**
 * Opens for reading a file in a directory the app writes (its console logs under log/SLOT): neither the file nor
 * its directory may be a link, so a link the app planted cannot make berth (which may be root) read another
 * app's file or a system file and serve it as this app's log. The directory above (berth's) is trusted; the
 * descriptor's real path must be exactly the file's under it, which also catches a swap after the open.
 * null: refused (a link, or a file with a second name: a hard link the kernel allows where
 * fs.protected_hardlinks is 0); the caller treats it as a file with nothing to read.
 */
export function openUnlinked(file: string): number | null {
  let fd: number
  try {
    fd = fsSync.openSync(file, fsSync.constants.O_RDONLY | fsSync.constants.O_NOFOLLOW)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') return null
    throw err
  }
  try {
    const dir = path.dirname(file)
    const expected = path.join(fsSync.realpathSync(path.dirname(dir)), path.basename(dir), path.basename(file))
    if (fsSync.readlinkSync(`/proc/self/fd/${fd}`) === expected && fsSync.fstatSync(fd).nlink === 1) return fd
  } catch (err) {
    fsSync.closeSync(fd)
    throw err
  }
  fsSync.closeSync(fd)
  return null
}

/**
 * A file of numbers berth hands out once and keeps (distribution ports, app uids): `{"KEY": {"name": n}}`,
 * read leniently (a damaged file is empty, entries that are not positive integers are dropped), written whole
 * by rename, 0600. `offset` is where a first assignment starts looking in a range of `size`: per data directory,
 * so that two berths on one host with the same range rarely race for one number.
 */
export class NumberFile {
  readonly offset: number

  constructor(readonly file: string, private readonly key: string, dataDir: string, size: number) {
    this.offset = crypto.createHash('sha256').update(dataDir).digest().readUInt32BE(0) % size
  }

  read(): Record<string, number> {
    try {
      const v = (JSON.parse(fsSync.readFileSync(this.file, 'utf8')) as Record<string, unknown>)[this.key]
      if (!v || typeof v !== 'object') return {}
      return Object.fromEntries(Object.entries(v).filter(([, n]) => Number.isInteger(n) && (n as number) > 0)) as Record<string, number>
    } catch {
      return {}
    }
  }

  write(numbers: Record<string, number>): void {
    const tmp = `${this.file}.${process.pid}.tmp`
    fsSync.writeFileSync(tmp, `${JSON.stringify({ [this.key]: numbers }, null, 2)}\n`, { mode: 0o600 })
    fsSync.renameSync(tmp, this.file)
  }
}
