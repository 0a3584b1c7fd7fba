// Opens the env key ring named by the config and the vault over berth.db, and at daemon start brings the stored
// values under the current key; what could not be (values under a key berth lacks) is said in the log.

import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { Database } from '../store/db.js'
import { EnvVault } from './env-vault.js'
import { Keyring, keySource } from './keyring.js'

export function openKeyring(config: Config, log: Logger, opts: { create: boolean }): Keyring {
  return Keyring.open(keySource({ dataDir: config.dataDir, envKeyFile: config.envKeyFile, credentialsDir: config.credentialsDir }), log, opts)
}

/** `create`: the daemon's start, which creates a missing key file and seals or re-encrypts what it must. */
export function openVault(config: Config, db: Database, log: Logger, opts: { create: boolean }): EnvVault {
  const ring = openKeyring(config, log, opts)
  const vault = new EnvVault(db, ring, log)
  if (!opts.create) return vault
  const report = vault.secure()
  log.info({ keyFile: ring.source.file, credential: ring.source.credential, keyId: ring.current.id, keys: ring.ids.length }, 'env values are encrypted with this key')
  if (report.sealed.length > 0) log.warn({ apps: report.sealed }, 'these apps had env values in clear in berth.db (from an older berth): they are now encrypted, and the WAL was checkpointed')
  if (report.reencrypted > 0) log.info({ values: report.reencrypted, keyId: ring.current.id }, 're-encrypted env values under the current key; older keys in the key file are no longer needed by them')
  for (const u of report.unreadable) {
    log.error(
      { app: u.app, names: u.names, keyIds: u.keyIds, keyFile: ring.source.file },
      `env values of the app were encrypted with a key that is not in the key file (a database copied without its key, or the wrong key file): the app's node will not start until that key is restored or the variables are set again`,
    )
  }
  return vault
}
