// `berth keys status|rotate|generate`: the key ring that encrypts app environments, worked on the data directory
// directly (like `berth token`), also while the daemon runs: the daemon reads the key file again when it changes.

import fs from 'node:fs'
import pino from 'pino'
import { loadConfig } from '../config.js'
import { problem } from '../errors.js'
import { Paths } from '../paths.js'
import { EnvVault } from '../secrets/env-vault.js'
import { CREDENTIAL_NAME, keyId, newKey, rewriteKeyFile } from '../secrets/keyring.js'
import { openKeyring } from '../secrets/open.js'
import { openDatabase } from '../store/db.js'
import type { Command } from './commands/common.js'
import { DATA_DIR_OPTIONS, parseSubcommand } from './data-dir.js'
import { UsageError } from './usage.js'

const HELP = `usage:
  berth keys status [--json] [--data-dir DIR] [--env-key-file FILE]
  berth keys rotate [--data-dir DIR] [--env-key-file FILE]
  berth keys generate

App env values are stored in berth.db encrypted (AES-256-GCM) with a key kept outside it: the systemd
credential ${CREDENTIAL_NAME} (LoadCredentialEncrypted=), or the key file BERTH_ENV_KEY_FILE, by default
DATA/keys/env.key (mode 0400, created at berth's first start). A backup of berth.db is useless without
that key: back it up separately. Lose the key and the values are lost (set them again).

status    the key file, the ids of its keys (the first one encrypts) and how many values each seals
rotate    puts a new key first in the key file, re-encrypts every value with it in one transaction,
          then removes the keys no value needs any more; prints the new key's id. Safe while berth runs:
          berth reads the key file again when it changes. Not for a systemd credential (berth cannot
          rewrite it): see README "Secrets at rest" for that procedure.
generate  prints a new key (base64, one line) for a systemd credential, e.g.
          berth keys generate | systemd-creds encrypt --name=${CREDENTIAL_NAME} - /etc/credstore.encrypted/${CREDENTIAL_NAME}
`

const OPTIONS = { ...DATA_DIR_OPTIONS, 'env-key-file': { type: 'string' } } as const

export const command: Command = { help: HELP, options: OPTIONS, run: keysCommand }

async function keysCommand(argv: string[]): Promise<number> {
  const parsed = parseSubcommand(argv, OPTIONS, HELP)
  if (parsed.exit !== null) return parsed.exit
  const { values, sub, args: rest } = parsed
  if (rest.length > 0) throw new UsageError(`berth keys ${sub} takes no arguments (got "${rest[0]}")`)
  if (sub === 'generate') {
    process.stdout.write(`${newKey().toString('base64')}\n`)
    return 0
  }
  if (sub !== 'status' && sub !== 'rotate') throw new UsageError(`unknown keys command "${sub}"; run berth keys --help`)
  const config = loadConfig(process.env, { 'data-dir': values['data-dir'], 'env-key-file': values['env-key-file'] })
  const paths = new Paths(config.dataDir)
  if (!fs.existsSync(paths.db)) {
    process.stderr.write(`berth: there is no ${paths.db}; check --data-dir (or BERTH_DATA_DIR)\n`)
    return 1
  }
  const log = pino({ level: 'warn' }, pino.destination(2))
  const db = openDatabase(paths.db, log)
  try {
    const ring = openKeyring(config, log, { create: false })
    const vault = new EnvVault(db, ring, log)
    try {
      if (sub === 'status') return status(vault, values.json === true)
      if (ring.source.credential) {
        throw problem('ENV_KEY_UNAVAILABLE', `The key ring is the systemd credential ${ring.source.file}, which berth cannot rewrite: rotate it as README "Secrets at rest" says (berth keys generate, systemd-creds encrypt, restart berth).`)
      }
      const old = ring.all()
      const fresh = newKey()
      // New key first: from here on the daemon seals new values with it (it reads the file in each write).
      rewriteKeyFile(ring.source.file, [fresh, ...old])
      const report = vault.secure()
      // Keep only the keys some value still needs (one that did not authenticate stays under its key).
      const used = new Set(vault.usage().map((u) => u.keyId))
      const kept = old.filter((k) => used.has(keyId(k)))
      rewriteKeyFile(ring.source.file, [fresh, ...kept])
      vault.checkpoint({ once: true })
      process.stderr.write(
        `rotated: ${report.reencrypted} value(s) re-encrypted with the new key; retired ${old.length - kept.length} key(s)${kept.length > 0 ? `, kept ${kept.map(keyId).join(', ')} (values that did not authenticate use it)` : ''}. Back up ${ring.source.file} again now: a backup of berth.db taken from now on needs the new key.\n`,
      )
      for (const u of report.unreadable) process.stderr.write(`berth: ${u.app}: ${u.names.join(', ')} stay encrypted with key ${u.keyIds.join(', ')}, which is not in the key file\n`)
      process.stdout.write(`${keyId(fresh)}\n`)
      return 0
    } finally {
      vault.close()
    }
  } finally {
    db.close()
  }
}

function status(vault: EnvVault, json: boolean): number {
  const ring = vault.keyring
  const usage = vault.usage()
  const keys = ring.ids.map((id, i) => ({ id, current: i === 0, values: usage.find((u) => u.keyId === id)?.values ?? 0 }))
  const unreadable = vault.unreadable()
  if (json) {
    process.stdout.write(`${JSON.stringify({ file: ring.source.file, credential: ring.source.credential, keys, unreadable }, null, 2)}\n`)
    return unreadable.length > 0 ? 1 : 0
  }
  process.stdout.write(`key file: ${ring.source.file}${ring.source.credential ? ' (systemd credential)' : ''}\n`)
  for (const k of keys) process.stdout.write(`  ${k.id}  ${k.current ? 'current ' : 'decrypts'}  ${k.values} value(s)\n`)
  for (const u of unreadable) process.stdout.write(`  missing key ${u.keyIds.join(', ')}: ${u.app} ${u.names.join(', ')}\n`)
  return unreadable.length > 0 ? 1 : 0
}
