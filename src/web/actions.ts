// The actions on an app and what follows them: the buttons the token's scopes allow, the confirmations with
// berth's own plan (deploy, rollback, start/stop/restart), and the deployment's steps shown as they happen.

import { api, appPath, problemText } from './api.js'
import { $, fill, find, h } from './dom.js'
import { stateText, stepTime } from './format.js'
import type { AppData, Deployment, Plan, Settings } from './schemas.js'
import { hooks, may, onAppPage, state } from './state.js'
import { ask, notice } from './ui.js'

export function actions(a: AppData): HTMLDivElement | null {
  const name = a.name
  const up = ['running', 'starting'].includes(a.status.node?.state)
  const buttons: HTMLButtonElement[] = []
  if (may('rollback') && a.releases.some((r) => !r.current)) buttons.push(h('button', { class: 'action rollback danger', onclick: () => confirmRollback(name, null) }, 'Roll back'))
  if (may('operate')) {
    if (!up) buttons.push(h('button', { class: 'action start', onclick: () => confirmOperate(name, 'start') }, 'Start'))
    if (up) buttons.push(h('button', { class: 'action restart', onclick: () => confirmOperate(name, 'restart') }, 'Restart'))
    if (up) buttons.push(h('button', { class: 'action stop', onclick: () => confirmOperate(name, 'stop') }, 'Stop'))
  }
  if (may('console')) {
    buttons.push(h('button', { class: 'action console', onclick: () => openConsole(name, 'remote') }, 'Console'))
    buttons.push(h('button', { class: 'action attach', onclick: () => openConsole(name, 'attach') }, 'Attach'))
  }
  return buttons.length ? h('div', { class: 'actions' }, buttons) : null
}

function openConsole(app: string, kind: 'remote' | 'attach'): void {
  // window.open from the same origin (with an opener) copies this tab's sessionStorage, token included,
  // into the new tab: the console arrives signed in without the token ever being in the URL.
  window.open(`/console/${encodeURIComponent(app)}#${kind}`, `berth-console-${app}`)
}

function planBody(plan: Plan, intro: string) {
  const blocked = plan.blockers.length > 0
  return [
    h('p', null, intro),
    plan.warnings.length ? h('div', { class: 'plan-warnings' }, h('h3', null, 'Warnings'), h('ul', null, plan.warnings.map((w) => h('li', null, w)))) : h('p', { class: 'plan-ok' }, 'No warnings.'),
    blocked ? h('div', { class: 'plan-blockers' }, h('h3', null, 'This would fail now'), h('ul', null, plan.blockers.map((b) => h('li', null, `${b.code}: ${b.message}`)))) : null,
    plan.config.length ? h('p', null, `Config that differs: ${plan.config.map((c) => `${c.file} (${c.change})`).join(', ')}`) : null,
    h('details', null, h('summary', null, 'Steps'), h('ol', null, plan.steps.map((s) => h('li', { class: `plan-step ${s.runs}` }, h('strong', null, s.name), ` (${s.runs}): ${s.detail}`)))),
  ]
}

export async function confirmRollback(app: string, to: string | null): Promise<void> {
  const dryRun = (revert: boolean) => api<Plan>(appPath(app, '/rollback?dryRun=true'), { method: 'POST', body: { ...(to ? { to } : {}), ...(revert ? { runRollbackExpr: true } : {}) } })
  let plan: Plan
  let settings: Settings | null
  try {
    // Settings only to know whether there is a rollbackExpr to offer; without them the box is not offered.
    ;[plan, settings] = await Promise.all([dryRun(false), api<Settings>(appPath(app, '/settings')).catch(() => null)])
  } catch (err) {
    return notice(`Cannot roll back ${app}: ${(err as Error).message}`)
  }
  const intro = (p: Plan, revert: boolean) => `From ${p.current ?? 'nothing'} to ${p.release}. ${revert ? 'The rollbackExpr setting runs first, from the release being left.' : 'A rollback runs no migrations.'}`
  const planBox = h('div', { id: 'rollback-plan' }, planBody(plan, intro(plan, false)))
  const revert: HTMLInputElement | null = settings?.rollbackExpr
    ? h('input', { id: 'rollback-revert', type: 'checkbox', onchange: async () => {
      const ticked = revert!.checked
      const ok = $<HTMLButtonElement>('confirm-ok')
      ok.disabled = true
      try {
        const next = await dryRun(ticked)
        // A later change of the box wins over this answer.
        if (revert!.checked !== ticked) return
        // The plan is fetched again rather than edited here, so what is shown is what berth would do.
        plan = next
        fill(planBox, planBody(plan, intro(plan, ticked)))
        ok.disabled = false
      } catch (err) {
        fill(planBox, h('p', { class: 'error' }, `Cannot plan the rollback: ${(err as Error).message}`))
      }
    } })
    : null
  const body = [revert ? h('p', null, h('label', null, revert, ' run the rollbackExpr setting first: ', h('code', null, settings!.rollbackExpr!))) : null, planBox]
  const ok = await ask(`Roll back ${app} to ${plan.version}?`, body, `Roll back to ${plan.version}`)
  if (!ok) return
  // The release the operator confirmed, not whatever "previous" means by the time the request arrives.
  await run(app, () => api<Deployment>(appPath(app, '/rollback'), { method: 'POST', body: { to: plan.release, ...(revert?.checked ? { runRollbackExpr: true } : {}) } }))
}

export async function confirmDeploy(app: string, release: string): Promise<void> {
  let plan: Plan
  try {
    plan = await api<Plan>(appPath(app, '/deployments?dryRun=true'), { method: 'POST', body: { release } })
  } catch (err) {
    return notice(`Cannot deploy ${release}: ${(err as Error).message}`)
  }
  const ok = await ask(`Deploy ${plan.release} to ${app}?`, planBody(plan, `From ${plan.current ?? 'nothing (first deploy)'} to ${plan.release}.`), `Deploy ${plan.version}`)
  if (ok) await run(app, () => api<Deployment>(appPath(app, '/deployments'), { method: 'POST', body: { release: plan.release } }))
}

async function confirmOperate(app: string, action: 'start' | 'stop' | 'restart'): Promise<void> {
  const verb = action[0]!.toUpperCase() + action.slice(1)
  const ok = await ask(`${verb} ${app}?`, [h('p', null, action === 'stop' ? 'The node stops and stays stopped until started again.' : `The node of the current release is ${action === 'start' ? 'started' : 'stopped and started again'}.`)], verb)
  if (ok) await run(app, () => api<Deployment>(appPath(app, `/${action}`), { method: 'POST' }))
}

/** Starts an operation and follows it on the app's page (going there first when the page shows another). */
export async function run(app: string, start: () => Promise<Deployment>): Promise<void> {
  let d: Deployment
  try {
    d = await start()
  } catch (err) {
    return notice(problemText(err))
  }
  if (!onAppPage(app)) {
    location.hash = `#/apps/${app}`
    await new Promise((r) => setTimeout(r, 0))
  }
  followDeployment(app, d)
}

/** Shows the deployment's steps as they happen (polling the deployment, which records each step as it starts). */
export function followDeployment(app: string, d: Deployment): void {
  state.progress?.stop()
  const box = find('progress') ?? h('section', { id: 'progress' })
  if (!box.isConnected) $('view').prepend(box)
  let timer: ReturnType<typeof setTimeout> | undefined
  let stopped = false
  const draw = (dep: Deployment) => {
    const done = !!dep.finishedAt
    box.className = done ? `done ${dep.state}` : 'running'
    box.dataset.state = dep.state
    fill(box,
      h('h2', null, `${dep.kind} ${dep.release}: `, h('span', { class: 'progress-state' }, stateText(dep.state))),
      dep.warnings.length ? h('ul', { class: 'plan-warnings' }, dep.warnings.map((w) => h('li', null, w))) : null,
      stepsList(dep, true),
      dep.reason ? h('p', { class: 'error' }, dep.reason) : null,
      done ? h('button', { onclick: () => { box.remove(); state.progress = null } }, 'Dismiss') : null,
    )
  }
  const tick = async () => {
    if (stopped) return
    try {
      const dep = await api<Deployment>(appPath(app, `/deployments/${d.id}`))
      draw(dep)
      if (dep.finishedAt) {
        void hooks.refreshApp(app, false)
        return
      }
    } catch (err) {
      if ((err as { status?: number }).status === 401) return
    }
    timer = setTimeout(tick, 400)
  }
  draw(d)
  state.progress = { stop: () => { stopped = true; clearTimeout(timer) }, box }
  void tick()
}

export function stepsList(dep: Deployment, open: boolean): HTMLOListElement {
  return h('ol', { class: 'steps' }, dep.steps.map((s) => h('li', { class: `step ${s.state}`, dataset: { step: s.name } },
    h('span', { class: 'step-name' }, s.name), ' ', h('span', { class: 'step-state' }, s.state), ' ', h('span', { class: 'step-time' }, stepTime(s)),
    s.output ? h('details', { open: open && s.state === 'running' ? true : null }, h('summary', null, 'output'), h('pre', null, s.output)) : null)))
}
