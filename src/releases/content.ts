// What an unpacked release holds that deploys care about: the Ecto migration files it ships and the
// module whose migrate/0 the default migration step calls. Reads the read-only release tree only.

import fs from 'node:fs'
import path from 'node:path'

/** Elixir module prefix of an OTP app name: my_app -> MyApp. */
export function moduleName(app: string): string {
  return app.split('_').map((w) => (w ? w[0]!.toUpperCase() + w.slice(1) : '')).join('')
}

/** Ecto migrations a release ships: lib/APP-VSN/priv/repo/migrations/*.exs (file names only). */
export function ectoMigrations(releaseDir: string, app: string): string[] {
  const lib = path.join(releaseDir, 'lib')
  const appDir = fs.existsSync(lib) ? fs.readdirSync(lib).find((d) => d.startsWith(`${app}-`)) : undefined
  if (!appDir) return []
  const dir = path.join(lib, appDir, 'priv', 'repo', 'migrations')
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.exs')).sort() : []
}
