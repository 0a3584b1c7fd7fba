// One expression on an app's running node through the release's rpc command, audited: the expression goes
// in a file (releases/expr-file.ts), the answer comes back as output with an error that says why when it failed.

import type { AppStore } from '../apps/store.js'
import { checkArgument } from '../apps/text.js'
import { problem } from '../errors.js'
import type { Paths } from '../paths.js'
import { currentReleaseId } from '../releases/current.js'
import { failedAnswer } from '../releases/kinds.js'
import type { EventStore } from '../store/events.js'
import type { CommandResult } from '../process/proc.js'
import type { Supervisor } from '../supervision/supervisor.js'
import { sweepExpressionFiles, withExpressionFile } from '../releases/expr-file.js'

export interface RpcDeps {
  paths: Paths
  supervisor: Pick<Supervisor, 'isUp' | 'status' | 'commandFor' | 'command' | 'kindOf' | 'binName' | 'commandHint' | 'uidOf'>
  apps: Pick<AppStore, 'settings'>
  /** When given, each rpc is written to the audit trail. */
  events?: EventStore
}

/** An rpc's outcome: `code` 0 only when the expression ran and answered; otherwise `error` says why. */
export interface RpcResult extends CommandResult {
  error: string | null
}

export class Rpc {
  constructor(private readonly deps: RpcDeps) {}

  /** At agent start: expression files a berth killed during an rpc left behind go (they may hold a secret). */
  recover(): void {
    sweepExpressionFiles(this.deps.paths)
  }

  /**
   * One expression through the release's rpc command on the running node, audited (the expression,
   * truncated; never its output, which may hold data). A failure is an answer, not an error: `code` is
   * non-zero and `error` says why, also when the command exited 0 but answered {badrpc, …} (relx).
   */
  async run(app: string, expr: string, timeoutMs: number, actor: string | null): Promise<RpcResult> {
    const { paths, supervisor, apps, events } = this.deps
    // Before anything runs: a NUL would make spawn fail with the whole expression in its error (and the log).
    checkArgument(expr, 'expr')
    const current = await currentReleaseId(paths, app)
    if (!current || !supervisor.isUp(app)) throw problem('NODE_NOT_RUNNING', `The node of "${app}" is not running; start it (POST /v1/apps/${app}/start) first.`)
    const settings = apps.settings(app)
    // From the running node's release, like a console: `current` moves first in a deploy, and each build has
    // its own cookie, so the new release's bin/APP cannot reach the old node until the restart.
    const release = supervisor.status(app).release ?? current
    const command = supervisor.commandFor(app, release, settings, 'rpc')
    // Never on the command line (D11): releases/expr-file.ts.
    const r = await withExpressionFile(paths, app, supervisor.uidOf(app), supervisor.kindOf(app, release), expr, (arg) => supervisor.command(app, release, command, [arg], timeoutMs))
    let error: string | null = null
    if (r.timedOut) error = `bin/${supervisor.binName(app, release)} ${command} did not answer within ${timeoutMs} ms and was killed`
    else if (r.code !== 0) error = `bin/${supervisor.binName(app, release)} ${command} exited with code ${r.code ?? r.signal}${supervisor.commandHint(app, release, settings, 'rpc')}`
    else error = failedAnswer(r.output)
    const code = r.code === 0 && error ? 1 : r.code
    events?.record({ app, actor, action: 'rpc', outcome: error ? 'error' : 'ok', detail: { expr: expr.slice(0, 500), code, timedOut: r.timedOut } })
    return { ...r, code, error }
  }
}
