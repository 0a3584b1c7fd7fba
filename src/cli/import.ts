// `berth import`: rebuilds the release catalogue in berth.db from the release directories on disk (after the
// database was lost, emptied or moved aside), on the data directory directly, and says what it did per release.

import fs from 'node:fs'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { AppStore } from '../apps/store.js'
import { loadConfig } from '../config.js'
import { findUnrecordedNode } from '../instances/recovery.js'
import { importReleases } from '../intake/reimport.js'
import { Paths } from '../paths.js'
import { ensureDataDir } from '../services.js'
import { openDatabase } from '../store/db.js'
import { DeploymentStore } from '../store/deployments.js'
import { EventStore } from '../store/events.js'
import { ownerId } from '../store/ids.js'
import { ReleaseStore } from '../store/releases.js'
import type { Command } from './commands/common.js'
import { DATA_DIR_OPTIONS } from './data-dir.js'
import { UsageError } from './usage.js'

const HELP = `usage: berth import [--data-dir DIR] [--json]

Records every release directory under DIR/apps/*/releases/ that berth.db does not list: from the
.berth-release.json each release carries, or from its files for releases an older berth unpacked.
Apps that lost their deployment history get it back from apps/APP/deployed.json, so rollback has a
target again. Nothing on disk is changed or removed; running it twice changes nothing.

Run it with berth stopped (it is also safe while berth runs; berth does the same at every start).
If berth.db is not a database, move it aside first (mv berth.db berth.db.damaged).
App settings come back from apps/APP/settings.json. Tokens and environments lived only in the
database: set them again afterwards.
`

const OPTIONS = DATA_DIR_OPTIONS

export const command: Command = { help: HELP, options: OPTIONS, run: importCommand }

export async function importCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  if (positionals.length > 0) throw new UsageError(`berth import takes no arguments (got "${positionals[0]}"); run berth import --help`)
  const config = loadConfig(process.env, { 'data-dir': values['data-dir'] })
  const paths = new Paths(config.dataDir)
  if (!fs.existsSync(paths.apps)) {
    process.stderr.write(`berth: ${paths.apps} does not exist, so there is nothing to import; check --data-dir (or BERTH_DATA_DIR)\n`)
    return 1
  }
  const log = pino({ level: 'error' }, pino.destination(2))
  await ensureDataDir(paths, log)
  const db = openDatabase(paths.db, log)
  try {
    const events = new EventStore(db)
    const deps = {
      paths,
      log,
      releases: new ReleaseStore(db),
      events,
      apps: new AppStore(db, events),
      deployments: new DeploymentStore(db, ownerId('import-')),
    }
    const result = await importReleases(deps, 'berth import')
    const nodes = Object.fromEntries(result.map((a) => [a.app, findUnrecordedNode(paths, a.app)]))
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ apps: result.map((a) => ({ ...a, node: nodes[a.app] })) }, null, 2)}\n`)
    } else {
      const rows: string[][] = []
      for (const a of result) {
        for (const e of a.entries) rows.push([a.app, e.entry, e.outcome, `${e.entry === a.current ? '(current) ' : ''}${e.note}`])
      }
      const widths = [0, 1, 2].map((i) => Math.max(0, ...rows.map((r) => r[i]!.length)))
      for (const r of rows) process.stdout.write(`${r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ')}\n`)
      for (const a of result) {
        const node = nodes[a.app]
        const facts = [
          `current ${a.current ?? 'none'}`,
          a.history.length > 0 ? `deployment history recorded for ${a.history.join(', ')}` : null,
          a.current ? `rollback target ${a.rollbackTarget ?? 'none (roll back with --to ID)'}` : null,
          node ? `node running (run_erl pid ${node.pid}, release ${node.release}${node.slot ? `, instance ${node.slot} on port ${node.port}` : ''}): berth re-adopts it when it starts` : a.current ? 'no node running' : null,
          a.settings === 'restored' ? `settings restored from apps/${a.app}/settings.json` : null,
          a.created ? `environment is unset: berth env ${a.app} replace ...${a.settings === 'restored' ? '' : `; settings are the defaults: berth settings ${a.app} set ...`}` : null,
          ...a.warnings.map((w) => `warning: ${w}`),
        ].filter(Boolean)
        process.stdout.write(`${a.app}: ${facts.join('; ')}\n`)
      }
      if (result.length === 0) process.stdout.write(`no apps under ${paths.apps}\n`)
    }
    return result.some((a) => a.entries.some((e) => e.outcome === 'failed')) ? 1 : 0
  } finally {
    db.close()
  }
}
