// The start script of an unpacked release, bin/NAME: NAME is the release's own name, which is the app's only
// by default (an app with the releaseName setting runs releases of another name, e.g. two apps of one release).
// Every place that runs or names bin/NAME asks here.

import fs from 'node:fs'
import path from 'node:path'

/** Release directories are read-only once finished, so what was read stays true; keyed by directory. */
const names = new Map<string, string>()

function read(dir: string): string | null {
  let version: string | null = null
  try {
    version = fs.readFileSync(path.join(dir, 'releases', 'start_erl.data'), 'utf8').trim().split(/\s+/)[1] ?? null
  } catch {
    // a release without start_erl.data has one directory under releases/
  }
  let relDirs: string[] = []
  try {
    relDirs = version ? [version] : fs.readdirSync(path.join(dir, 'releases'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name)
  } catch {
    return null
  }
  let scripts: string[] = []
  try {
    scripts = fs.readdirSync(path.join(dir, 'bin'), { withFileTypes: true }).filter((d) => d.isFile() && !d.name.includes('.')).map((d) => d.name)
  } catch {
    return null
  }
  // The same rule as intake's: a bin/NAME with a releases/VSN/NAME.rel, else the only script.
  for (const v of relDirs) {
    let rels: string[] = []
    try {
      rels = fs.readdirSync(path.join(dir, 'releases', v)).filter((f) => f.endsWith('.rel')).map((f) => f.slice(0, -4))
    } catch {
      continue
    }
    const hit = scripts.find((s) => rels.includes(s))
    if (hit) return hit
  }
  return scripts.length === 1 ? scripts[0]! : null
}

/** The release's name (its bin/NAME), read from its directory; `fallback` (the app's name) when it cannot tell. */
export function releaseName(dir: string, fallback: string): string {
  const known = names.get(dir)
  if (known) return known
  const name = read(dir)
  if (name) names.set(dir, name)
  return name ?? fallback
}

/** The path of the release's start script. */
export function releaseScript(dir: string, fallback: string): string {
  return path.join(dir, 'bin', releaseName(dir, fallback))
}
