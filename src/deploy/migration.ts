// Which migration a deploy runs, and running an eval (migration or rollback expression) as a step's work:
// the expression comes from the migrateExpr setting or from the release's own metadata, never from berth's app name.

import type { AppSettings } from '../apps/settings.js'
import { StepFailed } from '../errors.js'
import type { Paths } from '../paths.js'
import { findMigrationModule } from '../releases/content.js'
import { withExpressionFile } from '../releases/expr-file.js'
import { detectKind, failedAnswer, KINDS, resolveCommands } from '../releases/kinds.js'
import { releaseName } from '../releases/script.js'
import type { Deployment } from '../store/deployments.js'
import type { Release } from '../store/releases.js'
import type { NodeControl } from '../supervision/supervisor.js'

/** Which migration a deploy runs (expr null: none) and where that comes from. */
export interface MigrationChoice {
  expr: string | null
  /**
   * setting: migrateExpr; disabled: migrateExpr is "" (the app says it has none, so nothing is said about
   * their absence); release: found in the release's metadata; none: nothing found.
   */
  source: 'setting' | 'disabled' | 'release' | 'none'
  /** What the expression is, or why there is none, in words for the step output and warnings. */
  note: string
}

/** The migrating step's output when the caller asked for no migration. */
export const MIGRATE_FALSE = 'migrate: false requested'

/**
 * The migration a deploy of `release` runs: the migrateExpr setting when there is one, otherwise
 * Mod.migrate() for the release's own *.Release module exporting migrate/0, read from the release's
 * metadata (releases/VSN/NAME.rel, the .app files and the .beam export tables), never from berth's app name.
 */
export function chooseMigration(paths: Paths, app: string, release: Release, settings: AppSettings): MigrationChoice {
  if (settings.migrateExpr !== null) {
    if (settings.migrateExpr.trim() === '') return { expr: null, source: 'disabled', note: 'migrateExpr is "": the app has no migrations' }
    return { expr: settings.migrateExpr, source: 'setting', note: 'the migrateExpr setting' }
  }
  const dir = paths.release(app, release.id)
  // A kind without an eval before start (relx) runs none unless the commands setting gives it one.
  const kind = release.kind ?? detectKind(dir, releaseName(dir, app), release.version)
  if (resolveCommands(kind, settings.commands).eval === null) {
    return { expr: null, source: 'none', note: `${KINDS[kind].missing.eval ?? `a ${KINDS[kind].label} has no eval command`}: berth runs no migration for it unless the commands.eval and migrateExpr settings name one (or the application migrates when it starts)` }
  }
  const found = findMigrationModule(dir, releaseName(dir, app), release.version)
  if (!found.chosen) return { expr: null, source: 'none', note: found.note }
  return { expr: `${found.chosen.module}.migrate()`, source: 'release', note: found.note }
}

/** Runs `bin/APP eval EXPR` from a release as a step's work; a failure carries the eval's output. */
export async function runEval(
  deps: { paths: Paths; supervisor: NodeControl },
  d: Deployment,
  release: string,
  expr: string,
  settings: AppSettings,
  signal: AbortSignal,
  failCode: 'MIGRATION_FAILED' | 'ROLLBACK_EXPR_FAILED',
  note?: string,
): Promise<string> {
  const { supervisor } = deps
  const evalCommand = supervisor.commandFor(d.app, release, settings, 'eval')
  // Never on the command line, which every local user can read: the release evaluates a file (expr-file.ts).
  const r = await withExpressionFile(deps.paths, d.app, supervisor.uidOf(d.app), supervisor.kindOf(d.app, release), expr, (arg) => supervisor.command(d.app, release, evalCommand, [arg], settings.migrateTimeoutMs, signal))
  const head = `${note ? `# ${note}\n` : ''}$ bin/${releaseName(deps.paths.release(d.app, release), d.app)} ${evalCommand} ${JSON.stringify(expr)}\n`
  const what = failCode === 'MIGRATION_FAILED' ? 'migration' : 'rollback expression'
  if (signal.aborted) throw new StepFailed('ABORTED', `the ${what} was killed: berth is shutting down`, `${head}${r.output}\n[killed: berth is shutting down]`)
  if (r.timedOut) throw new StepFailed(failCode === 'MIGRATION_FAILED' ? 'MIGRATION_TIMEOUT' : failCode, `${what} timed out after ${settings.migrateTimeoutMs} ms and was killed`, `${head}${r.output}\n[killed after ${settings.migrateTimeoutMs} ms]`)
  if (r.code !== 0) throw new StepFailed(failCode, `${what} exited with code ${r.code ?? r.signal}${supervisor.commandHint(d.app, release, settings, 'eval')}`, `${head}${r.output}`)
  const answer = failedAnswer(r.output)
  if (answer) throw new StepFailed(failCode, `${what} failed although ${evalCommand} exited 0: ${answer}`, `${head}${r.output}`)
  return `${head}${r.output}`
}
