// Decides whether an unpacked tree is an Erlang/Elixir release and reads its name and version from the content.
// File names of uploads are never trusted; a single wrapping top-level directory is looked through.

import fs from 'node:fs/promises'
import path from 'node:path'
import { problem } from '../errors.js'
import { APP_NAME, VERSION } from '../paths.js'
import { detectKind, type ReleaseKind } from '../releases/kinds.js'

export interface ReleaseIdentity {
  /** Directory holding bin/, releases/ (the staging root or its only subdirectory). */
  root: string
  name: string
  version: string
  ertsVersion: string | null
  /** What built it (Mix, relx, Distillery), from its start script and layout. */
  kind: ReleaseKind
}

async function isDir(p: string): Promise<boolean> {
  return fs.lstat(p).then((s) => s.isDirectory(), () => false)
}

async function isFile(p: string): Promise<boolean> {
  return fs.lstat(p).then((s) => s.isFile(), () => false)
}

async function findRoot(staging: string): Promise<string> {
  if (await isDir(path.join(staging, 'releases'))) return staging
  const top = await fs.readdir(staging)
  if (top.length === 1 && (await isDir(path.join(staging, top[0]!))) && (await isDir(path.join(staging, top[0]!, 'releases')))) {
    return path.join(staging, top[0]!)
  }
  const shown = top.slice(0, 5).map((n) => `"${n}"`).join(', ')
  throw problem('RELEASE_INVALID', `The archive has no releases/ directory at its top level (found ${shown || 'nothing'}); upload the tarball \`mix release\` writes, whose top level is bin/, erts-*/, lib/, releases/.`)
}

/** Reads `releases/start_erl.data` ("ERTS_VSN REL_VSN") when present. */
async function readStartErl(root: string): Promise<{ erts: string; version: string } | null> {
  const file = path.join(root, 'releases', 'start_erl.data')
  if (!(await isFile(file))) return null
  const st = await fs.stat(file)
  if (st.size > 1024) throw problem('RELEASE_INVALID', 'releases/start_erl.data is larger than 1 KiB; it must hold "ERTS_VSN REL_VSN".')
  const words = (await fs.readFile(file, 'utf8')).trim().split(/\s+/)
  if (words.length !== 2) throw problem('RELEASE_INVALID', `releases/start_erl.data must hold "ERTS_VSN REL_VSN", found "${words.join(' ').slice(0, 80)}".`)
  return { erts: words[0]!, version: words[1]! }
}

/**
 * `expectedName`: the release name the app takes (its releaseName setting, else its own name); null accepts
 * any (a directory already under the app's releases/, found again by `berth import`).
 */
export async function inspectRelease(staging: string, expectedApp: string, expectedName: string | null = expectedApp): Promise<ReleaseIdentity> {
  const root = await findRoot(staging)
  const start = await readStartErl(root)
  const relDirs = (await fs.readdir(path.join(root, 'releases'), { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name)

  let version: string
  if (start) {
    version = start.version
    if (!relDirs.includes(version)) {
      throw problem('RELEASE_INVALID', `releases/start_erl.data names version "${version}", but there is no releases/${version}/ directory; the tarball is inconsistent.`)
    }
  } else if (relDirs.length === 1) {
    version = relDirs[0]!
  } else {
    throw problem('RELEASE_INVALID', `The archive has no releases/start_erl.data and ${relDirs.length} directories under releases/, so its version is unknown.`)
  }
  if (!VERSION.test(version)) {
    throw problem('RELEASE_INVALID', `Release version "${version.slice(0, 80)}" is not accepted; versions may use letters, digits, ".", "+", "_" and "-" (at most 64).`)
  }

  // The release's name: a bin/NAME script that has a matching releases/VSN/NAME.rel (or, for older tools, is the only script).
  const binDir = path.join(root, 'bin')
  const scripts = (await isDir(binDir))
    ? (await fs.readdir(binDir, { withFileTypes: true })).filter((d) => d.isFile() && !d.name.includes('.')).map((d) => d.name)
    : []
  const relNames = (await fs.readdir(path.join(root, 'releases', version)).catch(() => [] as string[]))
    .filter((f) => f.endsWith('.rel'))
    .map((f) => f.slice(0, -4))
  const named = scripts.filter((s) => relNames.includes(s))
  const candidates = named.length > 0 ? named : relNames.length === 0 && scripts.length === 1 ? scripts : []

  if (candidates.length > 1 || relNames.length > 1) {
    throw problem('RELEASE_MULTIPLE_APPS', `The archive holds more than one release (${[...new Set([...candidates, ...relNames])].join(', ')}); upload one release per tarball.`)
  }
  if (candidates.length === 0) {
    const why = relNames.length === 1 ? `releases/${version}/${relNames[0]}.rel exists but bin/${relNames[0]} is missing` : `no bin/NAME script with a matching releases/${version}/NAME.rel`
    throw problem('RELEASE_INVALID', `The archive is not a complete release: ${why}.`)
  }
  const name = candidates[0]!
  if (!APP_NAME.test(name)) throw problem('RELEASE_INVALID', `Release name "${name}" is not a valid app name (${APP_NAME.source}).`)
  if (expectedName !== null && name !== expectedName) {
    const takes = expectedName === expectedApp ? '' : ` (its releaseName setting), which takes releases of "${expectedName}"`
    throw problem('RELEASE_NAME_MISMATCH', `The tarball is a release of "${name}", but it was uploaded to app "${expectedApp}"${takes}; upload it to /v1/apps/${name}/releases, or set the app's releaseName to "${name}" (PUT /v1/apps/${expectedApp}/settings) to run it as "${expectedApp}".`, { release: name, app: expectedApp, releaseName: expectedName })
  }
  return { root, name, version, ertsVersion: start?.erts ?? null, kind: detectKind(root, name, version) }
}
