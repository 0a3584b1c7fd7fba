// `berth deploy` and `berth rollback`: upload a release with a progress display, start the deployment and
// follow it step by step until it ends. The exit code is the outcome, so a CI job fails with the deployment.

import crypto from 'node:crypto'
import fs from 'node:fs'
import { ApiError, type BerthClient, type UploadProgress } from '../client.js'
import { FINAL_STATES, type Deployment, type Release, type Step } from '../api.js'
import { between, bytes, duration, rate } from '../format.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'
import { fetchPlan, formatPlan } from './plan.js'

const DEPLOY_HELP = `usage: berth deploy FILE --app APP [--no-deploy | --dry-run] [--no-migrate] [--rollout ID]
       berth deploy --release ID --app APP [--dry-run] [--no-migrate] [--rollout ID]

Uploads FILE (the .tar.gz that \`mix release\` writes) to APP with its sha256, so a file that changes or
is damaged on the way is refused and nothing is kept, then deploys it and follows the deployment: each
step (migrating, switching, starting, verifying, rollback) as it starts and ends, then the outcome.
Exits 0 when the deployment succeeded, 1 when it failed or was rolled back (with the reason).

  --app APP        the app (its name must match the release inside the tarball)
  --no-deploy      only upload; deploy later with --release ID
  --release ID     deploy a release uploaded before (an id, or a version naming one release)
  --dry-run        print what the deploy would do and change nothing (like berth plan); with FILE
                   the release is uploaded first. Exits 1 when something would stop the deploy.
  --no-migrate     deploy without running the migration (the migrating step is recorded as skipped,
                   with a warning), e.g. on hosts that share a database another host has migrated
  --rollout ID     tag the deployment with this rollout id (1 to 64 letters, digits, ., _ or -);
                   berth fleet status and GET .../deployments?rollout=ID find it by that id

Progress: on a terminal one updating line; otherwise a line per quarter (or every 2 s) and a summary.
With --json, progress goes to stderr and stdout gets the release with its finished deployment under
"deployment" (like ?deploy=true), or the deployment alone with --release.

${CONNECTION_HELP}
`

const ROLLBACK_HELP = `usage: berth rollback APP [--to ID] [--run-rollback-expr]

Rolls APP back to the release --to names (an id, or a version naming one release), or without --to to
the last release that succeeded before the current one, and follows it like berth deploy. Migrations do
not run; migrations the target lacks are printed as warnings. --run-rollback-expr runs the app's
rollbackExpr setting first (step reverting_migrations, shown as skipped without it), then the steps of a
deploy. Exits 0 when the rollback succeeded, 1 otherwise.

${CONNECTION_HELP}
`

const POLL_MS = 250
// A berth restarting mid-deployment is down for a moment; the deployment then ends "agent restarted".
const UNREACHABLE_GRACE_MS = 30_000

const DEPLOY_OPTIONS = { app: { type: 'string' }, 'no-deploy': { type: 'boolean' }, release: { type: 'string' }, 'dry-run': { type: 'boolean' }, 'no-migrate': { type: 'boolean' }, rollout: { type: 'string' } } as const
const ROLLBACK_OPTIONS = { to: { type: 'string' }, 'run-rollback-expr': { type: 'boolean' } } as const

export const deploy: Command = { help: DEPLOY_HELP, options: { ...COMMON_OPTIONS, ...DEPLOY_OPTIONS }, run: deployCommand }
export const rollback: Command = { help: ROLLBACK_HELP, options: { ...COMMON_OPTIONS, ...ROLLBACK_OPTIONS }, run: rollbackCommand }

async function deployCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, DEPLOY_OPTIONS)
  if (helped(values, DEPLOY_HELP)) return 0
  const app = appArg(values.app, 'berth deploy FILE --app APP')
  const json = !!values.json
  // Human progress never mixes into the JSON on stdout.
  const out = json ? process.stderr : process.stdout
  const file = positionals[0]
  if (positionals.length > 1) throw new UsageError(`deploy takes one file, got ${positionals.length}`)
  if (values.release && file) throw new UsageError('give either FILE or --release ID, not both')
  if (values.release && values['no-deploy']) throw new UsageError('--no-deploy uploads a file; with --release there is nothing to upload')
  if (values['dry-run'] && values['no-deploy']) throw new UsageError('--dry-run and --no-deploy: choose one')
  if (values['no-deploy'] && (values['no-migrate'] || values.rollout !== undefined)) throw new UsageError('--no-migrate and --rollout apply to a deployment; --no-deploy starts none')
  // Sent only when given, so a deploy without them is the request it always was.
  const options = { ...(values['no-migrate'] ? { migrate: false } : {}), ...(typeof values.rollout === 'string' ? { rollout: values.rollout } : {}) }
  const api = client(values, env)
  const dryRun = async (release: string): Promise<number> => {
    const plan = await fetchPlan(api, app, release, options)
    if (json) printJson(plan)
    else out.write(formatPlan(plan))
    return plan.blockers.length === 0 ? 0 : 1
  }

  if (typeof values.release === 'string') {
    if (values['dry-run']) return dryRun(values.release)
    const done = await startAndFollow(api, app, 'deployments', { release: values.release, ...options }, out)
    if (json) printJson(done)
    return done.state === 'succeeded' ? 0 : 1
  }

  if (!file) throw new UsageError('deploy needs the release tarball: berth deploy FILE --app APP')
  const stat = fs.statSync(file, { throwIfNoEntry: false })
  if (!stat?.isFile()) throw new UsageError(`${file} is not a file`)
  const sha256 = await sha256File(file)
  const progress = new ProgressLine(out)
  const up = await api.upload<Release>(appPath(app, `/releases?sha256=${sha256}`), file, (p) => progress.update(p)).catch((err: unknown) => {
    progress.abort()
    throw err
  })
  progress.finish(up.sentMs, up.elapsedMs)
  const release = up.body
  out.write(`${up.status === 201 ? 'release' : 'release already uploaded:'} ${release.id} (version ${release.version})\n`)
  if (values['no-deploy']) {
    if (json) printJson(release)
    return 0
  }
  if (values['dry-run']) return dryRun(release.id)
  const done = await startAndFollow(api, app, 'deployments', { release: release.id, ...options }, out)
  if (json) printJson({ ...release, current: done.state === 'succeeded', deployment: done })
  return done.state === 'succeeded' ? 0 : 1
}

async function rollbackCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, ROLLBACK_OPTIONS)
  if (helped(values, ROLLBACK_HELP)) return 0
  const app = appArg(positionals[0], 'berth rollback APP [--to ID]')
  if (positionals.length > 1) throw new UsageError(`rollback takes one app, got ${positionals.join(' ')}`)
  const api = client(values, env)
  const body: { to?: string; runRollbackExpr?: boolean } = {}
  if (typeof values.to === 'string') body.to = values.to
  if (values['run-rollback-expr']) body.runRollbackExpr = true
  const out = values.json ? process.stderr : process.stdout
  const done = await startAndFollow(api, app, 'rollback', body, out)
  if (values.json) printJson(done)
  return done.state === 'succeeded' ? 0 : 1
}

/** Starts a deployment, rollback or operation (POST to `route`) and follows it until it ends. */
export async function startAndFollow(api: BerthClient, app: string, route: 'deployments' | 'rollback' | 'start' | 'stop' | 'restart', body: unknown, out: NodeJS.WriteStream): Promise<Deployment> {
  const started = await api.request<Deployment>('POST', appPath(app, `/${route}`), body)
  out.write(`${announce(started)}\n`)
  // Ctrl+C stops following, not the deployment: say so, since the server carries on without us.
  const onInterrupt = () => {
    out.write(`\nstopped following; deployment ${started.id} goes on (berth status ${app})\n`)
    process.exit(130)
  }
  process.once('SIGINT', onInterrupt)
  try {
    return await follow(api, started, out)
  } finally {
    process.off('SIGINT', onInterrupt)
  }
}

/** Polls the deployment until it ends, printing each step as it starts and ends, then the outcome. */
export async function follow(api: BerthClient, first: Deployment, out: NodeJS.WriteStream): Promise<Deployment> {
  const shown: ('started' | 'ended')[] = []
  let open = false
  let dep = first
  let unreachableSince: number | null = null
  for (;;) {
    dep.steps.forEach((step, i) => {
      if (shown[i] === 'ended') return
      if (step.state === 'running') {
        if (!shown[i]) {
          out.write(`${step.name} ... `)
          open = true
          shown[i] = 'started'
        }
        return
      }
      out.write(`${shown[i] ? '' : `${step.name} ... `}${stepResult(step)}\n`)
      open = false
      shown[i] = 'ended'
      if (step.state === 'failed') out.write(indentTail(step.output))
    })
    if (FINAL_STATES.includes(dep.state)) break
    await new Promise((r) => setTimeout(r, POLL_MS))
    try {
      dep = await api.request<Deployment>('GET', appPath(dep.app, `/deployments/${dep.id}`))
      unreachableSince = null
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== null) throw err
      unreachableSince ??= Date.now()
      if (Date.now() - unreachableSince > UNREACHABLE_GRACE_MS) throw err
    }
  }
  if (open) out.write('\n')
  for (const w of dep.warnings) out.write(`warning: ${w}\n`)
  const took = between(dep.createdAt, dep.finishedAt)
  if (dep.state === 'succeeded') out.write(`${succeeded(dep)}${took === null ? '' : ` (${duration(took)})`}\n`)
  else out.write(`${dep.state}: ${dep.reason ?? 'no reason given'}\n`)
  return dep
}

/** The last line of an operation that succeeded: what now runs, or for a stop that nothing does. */
function succeeded(d: Deployment): string {
  switch (d.kind) {
    case 'stop': {
      const was = d.steps.find((s) => s.name === 'stopping')?.output === 'was not running' ? 'was not running; it' : 'is stopped and'
      return `stopped: ${d.app} ${was} stays stopped until berth start ${d.app} or a deploy`
    }
    case 'start':
      return `started: ${d.app} runs ${d.release}`
    case 'restart':
      return `restarted: ${d.app} runs ${d.release}`
    default:
      return `succeeded: ${d.app} runs ${d.release}`
  }
}

function announce(d: Deployment): string {
  const from = d.previous ? ` (from ${d.previous})` : ''
  switch (d.kind) {
    case 'deploy':
      return `deploying ${d.app} to ${d.release}${from}, deployment ${d.id}`
    case 'rollback':
      return `rolling back ${d.app} to ${d.release}${from}, deployment ${d.id}`
    case 'stop':
      return `stopping ${d.app}, operation ${d.id}`
    default:
      return `${d.kind === 'start' ? 'starting' : 'restarting'} ${d.app} on ${d.release}, operation ${d.id}`
  }
}

function stepResult(step: Step): string {
  const ms = between(step.startedAt, step.endedAt)
  return step.state === 'skipped' || ms === null ? step.state : `${step.state} (${duration(ms)})`
}

/** The end of a failed step's output (migration errors, the node's last words), indented under it. */
function indentTail(output: string, lines = 20): string {
  const all = output.trimEnd().split('\n').filter((l) => l.length > 0)
  if (all.length === 0) return ''
  const cut = all.length > lines ? [`... (${all.length - lines} earlier lines)`, ...all.slice(-lines)] : all
  return cut.map((l) => `    ${l}\n`).join('')
}

async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256')
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/**
 * Upload progress: on a terminal one line redrawn at most 10 times a second; elsewhere (CI logs) a line
 * each time another quarter is sent or 2 s have passed, so a log shows progress without flooding.
 */
class ProgressLine {
  readonly #out: NodeJS.WriteStream
  readonly #tty: boolean
  #lastDraw = Date.now()
  #nextQuarter = 25
  #last: UploadProgress | null = null

  constructor(out: NodeJS.WriteStream) {
    this.#out = out
    this.#tty = !!out.isTTY
  }

  update(p: UploadProgress): void {
    this.#last = p
    const pct = p.total > 0 ? Math.floor((p.sent / p.total) * 100) : 100
    const now = Date.now()
    if (this.#tty) {
      if (now - this.#lastDraw < 100 && p.sent < p.total) return
      this.#lastDraw = now
      const width = 24
      const filled = Math.round((pct / 100) * width)
      this.#out.write(`\r\x1b[Kupload [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}%  ${this.#numbers(p)}`)
      return
    }
    if (pct < this.#nextQuarter && now - this.#lastDraw < 2000) return
    this.#lastDraw = now
    while (this.#nextQuarter <= pct) this.#nextQuarter += 25
    this.#out.write(`upload ${pct}% ${this.#numbers(p)}\n`)
  }

  /** Ends a half-drawn bar so the error that follows starts on its own line. */
  abort(): void {
    if (this.#tty && this.#last) this.#out.write('\n')
  }

  finish(sentMs: number, elapsedMs: number): void {
    const total = this.#last?.total ?? 0
    if (this.#tty) this.#out.write('\r\x1b[K')
    // The answer comes after berth's last checks and the move into place: say how long those took apart.
    const stored = elapsedMs - sentMs >= 50 ? `, checked and stored ${duration(elapsedMs - sentMs)} later` : ''
    this.#out.write(`uploaded ${bytes(total)} in ${duration(sentMs)} (${rate(total / Math.max(sentMs / 1000, 0.001))})${stored}\n`)
  }

  #numbers(p: UploadProgress): string {
    return `${bytes(p.sent)}/${bytes(p.total)} ${rate(p.sent / Math.max(p.elapsedMs / 1000, 0.001))}`
  }
}
