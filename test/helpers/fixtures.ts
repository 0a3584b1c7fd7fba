// Fixture releases built from the projects in test/fixtures by scripts/build-fixtures.mjs, once per test run
// (the runner builds them first; a test file run alone builds them on demand, under the script's lock).

import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

export const REPO = fileURLToPath(new URL('../../../', import.meta.url))

export interface Fixture {
  tarball: string
  app: string
  version: string
  sha256: string
  size: number
}

type Manifest = { variants: Record<string, Fixture> }

let manifest: Manifest | null = null

/**
 * hello's variants; myapp (app :myapp, modules MyApp.*), storefront (app :shop released as storefront), snoop
 * (tries to reach other apps and berth's files: the isolation test), relx (rebar3).
 */
export type FixtureName = 'v1' | 'v2' | 'crash_on_boot' | 'crash_after_boot' | 'slow_raise' | 'migrate_fail' | 'migrate_hang' | 'myapp' | 'storefront' | 'snoop' | 'relx'

export async function fixture(name: FixtureName): Promise<Fixture> {
  if (!manifest) {
    const out = process.env.BERTH_FIXTURES_OUT ?? path.join(REPO, 'test', '.fixtures')
    const file = path.join(out, 'manifest.json')
    if (!fs.existsSync(file)) {
      const mod = (await import(pathToFileURL(path.join(REPO, 'scripts', 'build-fixtures.mjs')).href)) as { buildFixtures(o: { out: string }): Promise<unknown> }
      await mod.buildFixtures({ out })
    }
    manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest
  }
  const f = manifest.variants[name]
  if (!f) throw new Error(`fixture ${name} is not in the manifest; rebuild with node scripts/build-fixtures.mjs --force`)
  return f
}
