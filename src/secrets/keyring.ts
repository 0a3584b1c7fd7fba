// The keys that encrypt app environments, kept outside berth.db: a systemd credential, or a key file of mode
// 0400 in a 0700 directory. Owns finding, creating, checking, re-reading and rewriting that key ring.

import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { inspect } from 'node:util'
import type { Logger } from 'pino'
import { problem } from '../errors.js'

/** The credential name the unit's LoadCredentialEncrypted= gives the key ring (systemd/berth.service). */
export const CREDENTIAL_NAME = 'berth-env-key'
const KEY_BYTES = 32

export interface KeySource {
  file: string
  /** A systemd credential: berth reads it, never creates or rewrites it (rotation is the operator's, see README). */
  credential: boolean
}

/** Where the key ring is: BERTH_ENV_KEY_FILE, else the unit's credential, else DATA/keys/env.key. */
export function keySource(opts: { dataDir: string; envKeyFile: string | null; credentialsDir: string | null }): KeySource {
  if (opts.envKeyFile) return { file: opts.envKeyFile, credential: false }
  if (opts.credentialsDir) {
    const file = path.join(opts.credentialsDir, CREDENTIAL_NAME)
    if (fs.existsSync(file)) return { file, credential: true }
  }
  return { file: path.join(opts.dataDir, 'keys', 'env.key'), credential: false }
}

/** A short, stable name for a key (not the key): stored beside each value, so that berth can tell which key it needs. */
export function keyId(key: Buffer): string {
  return crypto.createHash('sha256').update('berth-env-key-id\0').update(key).digest('hex').slice(0, 16)
}

export function newKey(): Buffer {
  return crypto.randomBytes(KEY_BYTES)
}

/** The file's text: one base64 key per line, the first one encrypts; the others only decrypt (during a rotation). */
export function keyFileText(keys: Buffer[]): string {
  return [
    '# berth env key ring (README: "Secrets at rest"). The first key encrypts; keys below it only decrypt',
    '# values not yet re-encrypted. Keep a copy apart from backups of berth.db: without it the values are lost.',
    ...keys.map((k) => k.toString('base64')),
    '',
  ].join('\n')
}

export class Keyring {
  private keys: Buffer[] = []
  /** What the file was when last read: a rewrite (berth keys rotate) changes it. */
  private stamp = ''

  private constructor(
    readonly source: KeySource,
    private readonly log: Logger,
  ) {}

  /**
   * Reads the key ring, checking that no one but berth's user can read or replace it. `create`: the daemon makes
   * a missing key file (never a credential) with a fresh key; the CLI does not, as a missing file there means
   * it looks in the wrong place.
   */
  static open(source: KeySource, log: Logger, opts: { create: boolean }): Keyring {
    const ring = new Keyring(source, log)
    if (opts.create && !source.credential && !fs.existsSync(source.file)) {
      const key = newKey()
      createKeyFile(source.file, [key])
      log.warn({ file: source.file, keyId: keyId(key) }, 'created the key that encrypts app environments; back it up apart from berth.db (without it the values cannot be read)')
    }
    ring.read()
    return ring
  }

  /** The key new values are encrypted with. */
  get current(): { id: string; key: Buffer } {
    return { id: keyId(this.keys[0]!), key: this.keys[0]! }
  }

  get ids(): string[] {
    return this.keys.map(keyId)
  }

  get(id: string): Buffer | undefined {
    return this.keys.find((k) => keyId(k) === id)
  }

  all(): Buffer[] {
    return [...this.keys]
  }

  /**
   * Reads the file again when it changed since (a rotation by the CLI while the daemon runs). A failure keeps
   * the keys held and is logged: a write must not start using no key, and a value must not become unreadable
   * because the file was briefly absent. Answers whether the keys changed.
   */
  refresh(): boolean {
    let stamp: string
    try {
      stamp = statStamp(this.source.file)
    } catch (err) {
      this.log.error({ file: this.source.file, err: (err as Error).message }, 'the env key file is gone; berth keeps the keys it read before')
      return false
    }
    if (stamp === this.stamp) return false
    try {
      this.read()
      return true
    } catch (err) {
      this.log.error({ file: this.source.file, err: (err as Error).message }, 'could not read the env key file again; berth keeps the keys it read before')
      return false
    }
  }

  private read(): void {
    checkPlace(this.source)
    let text: string
    try {
      text = fs.readFileSync(this.source.file, 'utf8')
    } catch (err) {
      throw problem('ENV_KEY_UNAVAILABLE', `The env key file ${this.source.file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). ${where(this.source)}`)
    }
    this.keys = parseKeys(text, this.source.file)
    this.stamp = statStamp(this.source.file)
  }

  // Never the keys, whatever logs or prints this object.
  toJSON(): unknown {
    return { file: this.source.file, credential: this.source.credential, ids: this.ids }
  }

  [inspect.custom](): string {
    return `Keyring ${JSON.stringify(this.toJSON())}`
  }
}

function statStamp(file: string): string {
  const st = fs.statSync(file)
  return `${st.ino}:${st.size}:${st.mtimeMs}`
}

function where(source: KeySource): string {
  return source.credential
    ? `It comes from the unit's LoadCredentialEncrypted=${CREDENTIAL_NAME}; see README "Secrets at rest".`
    : 'Restore it from your backup of the key (README "Secrets at rest"), or set BERTH_ENV_KEY_FILE to where it is.'
}

function parseKeys(text: string, file: string): Buffer[] {
  const keys: Buffer[] = []
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const key = /^[A-Za-z0-9+/]+={0,2}$/.test(line) ? Buffer.from(line, 'base64') : null
    // Line numbers only: the text of a bad line may be a key.
    if (!key || key.length !== KEY_BYTES) throw problem('ENV_KEY_UNAVAILABLE', `Line ${i + 1} of the env key file ${file} is not a key (${KEY_BYTES} bytes in base64, one per line).`)
    keys.push(key)
  }
  if (keys.length === 0) throw problem('ENV_KEY_UNAVAILABLE', `The env key file ${file} holds no key.`)
  return keys
}

/** The key file and its directory may be read by berth's user only, and replaced by nobody else. */
function checkPlace(source: KeySource): void {
  const { file } = source
  let st: fs.Stats
  try {
    st = fs.lstatSync(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw problem('ENV_KEY_UNAVAILABLE', code === 'ENOENT' ? `There is no env key file at ${file}. ${where(source)}` : `The env key file ${file} cannot be read (${code}). ${where(source)}`)
  }
  if (!st.isFile()) throw problem('ENV_KEY_UNAVAILABLE', `The env key file ${file} is not a regular file (a symlink or other kind is refused).`)
  const mode = st.mode & 0o777
  if (mode & 0o077) throw problem('ENV_KEY_INSECURE', `The env key file ${file} is mode ${mode.toString(8).padStart(4, '0')}: other users may read it. Run \`chmod 0400 ${file}\` and start berth again.`)
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw problem('ENV_KEY_INSECURE', `The env key file ${file} belongs to uid ${st.uid}, not to berth's user (uid ${process.getuid()}). Run \`chown\` on it and start berth again.`)
  }
  const dir = path.dirname(file)
  const dmode = fs.statSync(dir).mode & 0o777
  if (dmode & 0o022) throw problem('ENV_KEY_INSECURE', `The directory ${dir} of the env key file is mode ${dmode.toString(8).padStart(4, '0')}: other users could replace the key. Run \`chmod 0700 ${dir}\` and start berth again.`)
}

/** Creates the key file exclusively, mode 0400, in a directory of its own (0700); fsynced before it is used. */
export function createKeyFile(file: string, keys: Buffer[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o400)
  try {
    fs.writeSync(fd, keyFileText(keys))
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  syncDir(path.dirname(file))
}

/** Replaces the key file's keys in one rename (a reader sees the old ring or the new one, never half). */
export function rewriteKeyFile(file: string, keys: Buffer[]): void {
  const tmp = `${file}.new-${process.pid}`
  fs.rmSync(tmp, { force: true })
  try {
    createKeyFile(tmp, keys)
    fs.renameSync(tmp, file)
  } finally {
    fs.rmSync(tmp, { force: true })
  }
  syncDir(path.dirname(file))
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}
