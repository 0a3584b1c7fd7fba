// What a release's runtime and configuration are, read from its unpacked tree: the ERTS it boots (and the OTP
// release that ERTS belongs to) and its config files under releases/VSN/. Reads the read-only tree only.

import fs from 'node:fs'
import path from 'node:path'

/** The config files a deploy can change behaviour through; the .eex form is the template some tools ship. */
export const CONFIG_FILES = ['vm.args', 'sys.config', 'env.sh', 'runtime.exs'] as const
export type ConfigFile = (typeof CONFIG_FILES)[number]

/** Files larger than this are compared by size alone: a config file that big is not read into a reply. */
const MAX_CONFIG_BYTES = 256 * 1024

// Each OTP major release ships one ERTS major (erts-13.x is OTP 25); releases rarely carry OTP_VERSION.
const OTP_OF_ERTS: Record<number, string> = { 9: '20', 10: '21', 11: '23', 12: '24', 13: '25', 14: '26', 15: '27', 16: '28' }

/** ERTS version from releases/start_erl.data ("ERTS_VSN REL_VSN"), else the erts-* directory; null when neither. */
export function ertsVersion(releaseDir: string): string | null {
  const data = readSmall(path.join(releaseDir, 'releases', 'start_erl.data'))
  const fromData = data?.trim().split(/\s+/)[0]
  if (fromData && /^\d+(\.\d+)*$/.test(fromData)) return fromData
  const dir = fs.existsSync(releaseDir) ? fs.readdirSync(releaseDir).find((d) => /^erts-\d+(\.\d+)*$/.test(d)) : undefined
  return dir ? dir.slice('erts-'.length) : null
}

/**
 * The OTP release: an OTP_VERSION file the release carries (releases/VSN/ or releases/), else the major
 * that the ERTS version implies (ERTS 10.0–10.3 is OTP 21, 10.4 and later OTP 22).
 */
export function otpVersion(releaseDir: string, version: string, erts: string | null): string | null {
  for (const f of [path.join(releaseDir, 'releases', version, 'OTP_VERSION'), path.join(releaseDir, 'releases', 'OTP_VERSION')]) {
    const v = readSmall(f)?.trim()
    if (v && /^\d+(\.\d+)*$/.test(v)) return v
  }
  if (!erts) return null
  const [major, minor] = erts.split('.').map(Number) as [number, number | undefined]
  if (major === 10) return (minor ?? 0) < 4 ? '21' : '22'
  return OTP_OF_ERTS[major] ?? null
}

export interface ConfigText {
  /** Path inside the release, e.g. releases/0.2.0/vm.args. */
  path: string
  /** null when the file is too large to compare by content. */
  text: string | null
  size: number
}

/** One config file of a release (its plain form first, then .eex), or null when the release has neither. */
export function configFile(releaseDir: string, version: string, name: ConfigFile): ConfigText | null {
  for (const candidate of [name, `${name}.eex`]) {
    const rel = path.posix.join('releases', version, candidate)
    const st = fs.statSync(path.join(releaseDir, rel), { throwIfNoEntry: false })
    if (!st?.isFile()) continue
    return { path: rel, size: st.size, text: st.size > MAX_CONFIG_BYTES ? null : fs.readFileSync(path.join(releaseDir, rel), 'utf8') }
  }
  return null
}

/**
 * The node name a release fixes in its vm.args (plain, relx's .src, or the .eex template): `-sname NAME` or
 * `-name NAME` that does not come from RELEASE_NODE, which is what berth sets per instance. A relx default such
 * as `${APP_NODE:-app}` is fixed too: berth sets no other variable. null when the name follows RELEASE_NODE or
 * the file names none (a Mix release names its node in env.sh, from RELEASE_NODE).
 */
export function fixedNodeName(releaseDir: string, version: string): { file: string; name: string } | null {
  for (const candidate of ['vm.args', 'vm.args.src', 'vm.args.eex']) {
    const rel = path.posix.join('releases', version, candidate)
    const text = readSmall(path.join(releaseDir, rel), MAX_CONFIG_BYTES)
    if (text === null) continue
    for (const line of text.split('\n')) {
      const m = /^\s*-s?name\s+(\S+)/.exec(line)
      if (!m) continue
      return m[1]!.includes('${RELEASE_NODE') ? null : { file: rel, name: m[1]! }
    }
    return null
  }
  return null
}

function readSmall(file: string, max = 4096): string | null {
  const st = fs.statSync(file, { throwIfNoEntry: false })
  return st?.isFile() && st.size <= max ? fs.readFileSync(file, 'utf8') : null
}
