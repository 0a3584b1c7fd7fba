// The copy of an app's settings that must outlive berth.db: apps/APP/settings.json, the fields that differ from
// the defaults, as stored in the database. Never the environment: it holds secrets and stays in berth.db only.

import fs from 'node:fs/promises'
import path from 'node:path'
import { isBerthError } from '../errors.js'
import { replaceFile } from '../fsutil.js'
import type { Paths } from '../paths.js'
import { DEFAULT_SETTINGS, mergeSettings } from './settings.js'

/** Written to a temporary file, synced and renamed, so a crash leaves the old or the new file. */
export async function writeSettingsFile(paths: Paths, app: string, stored: Record<string, unknown>): Promise<void> {
  const file = paths.settingsFile(app)
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 })
  await replaceFile(file, `${JSON.stringify({ settings: stored }, null, 2)}\n`, 0o640)
}

/**
 * The stored fields, checked as a PUT would check them; null when there is no file; a sentence saying why
 * when the file cannot be used (unreadable, not JSON, or a value berth would refuse).
 */
export async function readSettingsFile(paths: Paths, app: string): Promise<Record<string, unknown> | null | string> {
  let raw: string
  try {
    raw = await fs.readFile(paths.settingsFile(app), 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENOENT' ? null : `it cannot be read (${code ?? (err as Error).message})`
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    return 'it is not JSON'
  }
  const stored = (parsed as { settings?: unknown } | null)?.settings
  if (!stored || typeof stored !== 'object' || Array.isArray(stored)) return 'it has no "settings" object'
  try {
    mergeSettings(DEFAULT_SETTINGS, stored as Record<string, unknown>)
  } catch (err) {
    return `it holds a value berth refuses (${isBerthError(err) ? err.message : (err as Error).message})`
  }
  return stored as Record<string, unknown>
}
