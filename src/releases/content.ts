// What an unpacked release holds that deploys care about: its applications (releases/VSN/NAME.rel and each
// app's .app file), the module whose migrate/0 the default migration step calls, found from that metadata
// and the modules' export tables, and the Ecto migration files it ships. Reads the read-only tree only.

import fs from 'node:fs'
import path from 'node:path'
import { beamExports } from './beam.js'
import { atomName, parseTerms, prop, Tuple, type Term } from './terms.js'

export interface ReleaseApp {
  name: string
  version: string
  /** lib/APP-VSN relative to the release, or null when the release does not ship it. */
  dir: string | null
  /** The application callback module (`mod` in the .app file), e.g. Elixir.MyApp.Application. */
  mod: string | null
  modules: string[]
  /** applications and included_applications: what this app needs. */
  needs: string[]
  /** No other application of the release needs this one: it is the release's own (not a dependency). */
  topLevel: boolean
}

function readTerms(file: string): Term[] | null {
  try {
    const st = fs.statSync(file)
    // .rel and .app files are a few KiB; a huge one is not worth parsing at deploy time.
    if (!st.isFile() || st.size > 1024 * 1024) return null
    return parseTerms(fs.readFileSync(file, 'utf8'), path.basename(file))
  } catch {
    return null
  }
}

function atoms(t: Term | undefined): string[] {
  return Array.isArray(t) ? t.map(atomName).filter((a): a is string => a !== null) : []
}

/** `{release, {Name, Vsn}, {erts, V}, [{App, Vsn} | {App, Vsn, Type} | ...]}`: the apps and their versions. */
function relApps(releaseDir: string, name: string, version: string): { name: string; version: string }[] | null {
  const rel = readTerms(path.join(releaseDir, 'releases', version, `${name}.rel`))?.[0]
  if (!(rel instanceof Tuple) || atomName(rel.items[0]) !== 'release' || !Array.isArray(rel.items[3])) return null
  return rel.items[3].flatMap((a) => (a instanceof Tuple && atomName(a.items[0]) && typeof a.items[1] === 'string' ? [{ name: atomName(a.items[0])!, version: a.items[1] }] : []))
}

/**
 * The applications of the release named `name` at `version`, each with its .app metadata. Without a .rel
 * file (older tools) every lib/APP-VSN with an ebin/APP.app counts.
 */
export function releaseApps(releaseDir: string, name: string, version: string): ReleaseApp[] {
  const lib = path.join(releaseDir, 'lib')
  const libDirs = fs.existsSync(lib) ? fs.readdirSync(lib).sort() : []
  const listed = relApps(releaseDir, name, version) ?? libDirs.flatMap((d) => {
    const m = /^([a-z][a-z0-9_]*)-(.+)$/.exec(d)
    return m && fs.existsSync(path.join(lib, d, 'ebin', `${m[1]}.app`)) ? [{ name: m[1]!, version: m[2]! }] : []
  })
  const apps = listed.map(({ name: app, version: vsn }) => {
    const dir = libDirs.includes(`${app}-${vsn}`) ? `${app}-${vsn}` : (libDirs.find((d) => d.startsWith(`${app}-`)) ?? null)
    const spec = dir ? readTerms(path.join(lib, dir, 'ebin', `${app}.app`))?.[0] : undefined
    const props = spec instanceof Tuple && atomName(spec.items[0]) === 'application' ? spec.items[2] : undefined
    const mod = prop(props, 'mod')
    return {
      name: app,
      version: vsn,
      dir: dir ? `lib/${dir}` : null,
      mod: mod instanceof Tuple ? atomName(mod.items[0]) : null,
      modules: atoms(prop(props, 'modules')),
      needs: [...atoms(prop(props, 'applications')), ...atoms(prop(props, 'included_applications'))],
      topLevel: false,
    }
  })
  const needed = new Set(apps.flatMap((a) => a.needs))
  for (const a of apps) a.topLevel = !needed.has(a.name)
  return apps
}

export interface MigrationModule {
  /** Elixir name, as the migrate expression uses it: MyApp.Release. */
  module: string
  app: string
  topLevel: boolean
}

export interface MigrationSearch {
  /** The module the default migration step calls, or null. */
  chosen: MigrationModule | null
  /** Every *.Release module exporting migrate/0, the chosen one first. */
  found: MigrationModule[]
  /** One or two sentences for the step output and warnings: what was found, and why this one. */
  note: string
}

const RELEASE_MODULE = /^Elixir\.(.+)\.Release$/

function exportsMigrate(releaseDir: string, dir: string, mod: string): boolean {
  try {
    const file = path.join(releaseDir, dir, 'ebin', `${mod}.beam`)
    return beamExports(fs.readFileSync(file), file).some((e) => e.name === 'migrate' && e.arity === 0)
  } catch {
    return false
  }
}

/** Elixir prefix of a module atom: Elixir.MyApp.Application -> MyApp. */
function prefix(mod: string | null): string | null {
  const m = mod ? /^Elixir\.([^.]+)/.exec(mod) : null
  return m ? m[1]! : null
}

/**
 * Finds the release's migration module from its own metadata, never from berth's app name: the modules
 * named *.Release that the release's applications list and whose .beam exports migrate/0. Only a module
 * of a top-level application (the release's own, not a dependency) is chosen; among several, the one
 * sharing its application's callback module prefix (MyApp.Application -> MyApp.Release), then the
 * shortest name, then alphabetical order.
 */
export function findMigrationModule(releaseDir: string, name: string, version: string): MigrationSearch {
  const apps = releaseApps(releaseDir, name, version)
  const rank = (m: MigrationModule): [number, number, number, string] => {
    const app = apps.find((a) => a.name === m.app)!
    return [m.topLevel ? 0 : 1, m.module.split('.')[0] === prefix(app.mod) ? 0 : 1, m.module.split('.').length, m.module]
  }
  const found: MigrationModule[] = []
  for (const app of apps) {
    if (!app.dir) continue
    for (const mod of app.modules) {
      const m = RELEASE_MODULE.exec(mod)
      if (m && exportsMigrate(releaseDir, app.dir, mod)) found.push({ module: `${m[1]}.Release`, app: app.name, topLevel: app.topLevel })
    }
  }
  found.sort((a, b) => {
    const [x, y] = [rank(a), rank(b)]
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1
    return 0
  })
  const own = found.filter((m) => m.topLevel)
  const tops = apps.filter((a) => a.topLevel).map((a) => a.name)
  const describe = (m: MigrationModule) => `${m.module}.migrate/0 (application ${m.app})`
  if (own.length === 0) {
    const deps = found.length > 0 ? `; dependencies have ${found.map(describe).join(', ')}, which berth does not call unless migrateExpr names it` : ''
    const where = apps.length === 0 ? `its metadata (releases/${version}/${name}.rel and lib/*/ebin/*.app) could not be read` : `none of its applications (${tops.join(', ') || 'none top-level'}) has a module named *.Release that exports migrate/0`
    return { chosen: null, found, note: `the release has no migration module: ${where}${deps}` }
  }
  const chosen = own[0]!
  const others = own.length > 1 ? `; also found ${own.slice(1).map(describe).join(', ')}: using the first (the application's own module prefix, then the shortest name, then alphabetical), set migrateExpr to choose` : ''
  return { chosen, found, note: `found ${describe(chosen)} in the release's metadata${others}` }
}

/** The version a release directory holds, from releases/start_erl.data ("ERTS_VSN REL_VSN"). */
function versionOf(releaseDir: string): string | null {
  try {
    return fs.readFileSync(path.join(releaseDir, 'releases', 'start_erl.data'), 'utf8').trim().split(/\s+/)[1] ?? null
  } catch {
    return null
  }
}

/**
 * Ecto migrations a release ships: priv/repo/migrations/*.exs of its top-level applications (file names
 * only). `name` is the release's name (bin/NAME), which need not be the application's.
 */
export function ectoMigrations(releaseDir: string, name: string): string[] {
  const version = versionOf(releaseDir)
  const own = version ? releaseApps(releaseDir, name, version).filter((a) => a.topLevel && a.dir).map((a) => a.dir!) : []
  const lib = path.join(releaseDir, 'lib')
  const dirs = own.length > 0 ? own : fs.existsSync(lib) ? fs.readdirSync(lib).filter((d) => d.startsWith(`${name}-`)).slice(0, 1).map((d) => `lib/${d}`) : []
  return dirs.flatMap((d) => {
    const dir = path.join(releaseDir, d, 'priv', 'repo', 'migrations')
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.exs')) : []
  }).sort()
}
