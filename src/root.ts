// Where berth's own files are (openapi.yaml, migrations/, the web assets, node_modules), for every module.
// One place, because the daemon also runs as a bundle (dist/bundle/), at the same depth as dist/src/.

import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository (or installed package) root: two levels above dist/src/ and dist/bundle/ alike. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** A path below the root. */
export function fromRoot(...parts: string[]): string {
  return path.join(ROOT, ...parts)
}
