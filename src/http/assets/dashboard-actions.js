// The actions on an app and what follows them: the buttons the token's scopes allow, the confirmations with
// berth's own plan (deploy, rollback, start/stop/restart), and the deployment's steps shown as they happen.

import { $, api, appPath, ask, fill, h, hooks, may, notice, state, stepTime } from './dashboard-core.js'

export function actions(a) {
  const name = a.name
  const up = ['running', 'starting'].includes(a.status.node?.state)
  const buttons = []
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

function openConsole(app, kind) {
  // window.open from the same origin (with an opener) copies this tab's sessionStorage, token included,
  // into the new tab: the console arrives signed in without the token ever being in the URL.
  window.open(`/console/${encodeURIComponent(app)}#${kind}`, `berth-console-${app}`)

}

function planBody(plan, intro) {
  const blocked = plan.blockers.length > 0
  return [
    h('p', null, intro),
    plan.warnings.length ? h('div', { class: 'plan-warnings' }, h('h3', null, 'Warnings'), h('ul', null, plan.warnings.map((w) => h('li', null, w)))) : h('p', { class: 'plan-ok' }, 'No warnings.'),
    blocked ? h('div', { class: 'plan-blockers' }, h('h3', null, 'This would fail now'), h('ul', null, plan.blockers.map((b) => h('li', null, `${b.code}: ${b.message}`)))) : null,
    plan.config.length ? h('p', null, `Config that differs: ${plan.config.map((c) => `${c.file} (${c.change})`).join(', ')}`) : null,
    h('details', null, h('summary', null, 'Steps'), h('ol', null, plan.steps.map((s) => h('li', { class: `plan-step ${s.runs}` }, h('strong', null, s.name), ` (${s.runs}): ${s.detail}`)))),
  ]
}

export async function confirmRollback(app, to) {
  const dryRun = (revert) => api(appPath(app, '/rollback?dryRun=true'), { method: 'POST', body: { ...(to ? { to } : {}), ...(revert ? { runRollbackExpr: true } : {}) } })
  let plan
  let settings
  try {
    // Settings only to know whether there is a rollbackExpr to offer; without them the box is not offered.
    ;[plan, settings] = await Promise.all([dryRun(false), api(appPath(app, '/settings')).catch(() => null)])
  } catch (err) {
    return notice(`Cannot roll back ${app}: ${err.message}`)
  }
  const intro = (p, revert) => `From ${p.current ?? 'nothing'} to ${p.release}. ${revert ? 'The rollbackExpr setting runs first, from the release being left.' : 'A rollback runs no migrations.'}`
  const planBox = h('div', { id: 'rollback-plan' }, planBody(plan, intro(plan, false)))
  const revert = settings?.rollbackExpr
    ? h('input', { id: 'rollback-revert', type: 'checkbox', onchange: async () => {
      const ticked = revert.checked
      $('confirm-ok').disabled = true
      try {
        const next = await dryRun(ticked)
        // A later change of the box wins over this answer.
        if (revert.checked !== ticked) return
        // The plan is fetched again rather than edited here, so what is shown is what berth would do.
        plan = next
        fill(planBox, planBody(plan, intro(plan, ticked)))
        $('confirm-ok').disabled = false
      } catch (err) {
        fill(planBox, h('p', { class: 'error' }, `Cannot plan the rollback: ${err.message}`))
      }
    } })
    : null
  const body = [revert ? h('p', null, h('label', null, revert, ' run the rollbackExpr setting first: ', h('code', null, settings.rollbackExpr))) : null, planBox]
  const ok = await ask(`Roll back ${app} to ${plan.version}?`, body, `Roll back to ${plan.version}`)
  if (!ok) return
  // The release the operator confirmed, not whatever "previous" means by the time the request arrives.
  await run(app, () => api(appPath(app, '/rollback'), { method: 'POST', body: { to: plan.release, ...(revert?.checked ? { runRollbackExpr: true } : {}) } }))
}

export async function confirmDeploy(app, release) {
  let plan
  try {
    plan = await api(appPath(app, '/deployments?dryRun=true'), { method: 'POST', body: { release } })
  } catch (err) {
    return notice(`Cannot deploy ${release}: ${err.message}`)
  }
  const ok = await ask(`Deploy ${plan.release} to ${app}?`, planBody(plan, `From ${plan.current ?? 'nothing (first deploy)'} to ${plan.release}.`), `Deploy ${plan.version}`)
  if (ok) await run(app, () => api(appPath(app, '/deployments'), { method: 'POST', body: { release: plan.release } }))
}

async function confirmOperate(app, action) {
  const ok = await ask(`${action[0].toUpperCase()}${action.slice(1)} ${app}?`, [h('p', null, action === 'stop' ? 'The node stops and stays stopped until started again.' : `The node of the current release is ${action === 'start' ? 'started' : 'stopped and started again'}.`)], action[0].toUpperCase() + action.slice(1))
  if (ok) await run(app, () => api(appPath(app, `/${action}`), { method: 'POST' }))
}

export async function run(app, start) {
  let d
  try {
    d = await start()
  } catch (err) {
    return notice(`${err.code ?? 'ERROR'}: ${err.message}`)
  }
  if (state.route?.name !== 'app' || state.route.app !== app) {
    location.hash = `#/apps/${app}`
    await new Promise((r) => setTimeout(r, 0))
  }
  followDeployment(app, d)
}

/** Shows the deployment's steps as they happen (polling the deployment, which records each step as it starts). */
export function followDeployment(app, d) {
  state.progress?.stop()
  const box = $('progress') ?? h('section', { id: 'progress' })
  if (!box.isConnected) $('view').prepend(box)
  let timer = null
  let stopped = false
  const draw = (dep) => {
    const done = !!dep.finishedAt
    box.className = done ? `done ${dep.state}` : 'running'
    box.dataset.state = dep.state
    fill(box,
      h('h2', null, `${dep.kind} ${dep.release}: `, h('span', { class: 'progress-state' }, dep.state.replace('_', ' '))),
      dep.warnings.length ? h('ul', { class: 'plan-warnings' }, dep.warnings.map((w) => h('li', null, w))) : null,
      stepsList(dep, true),
      dep.reason ? h('p', { class: 'error' }, dep.reason) : null,
      done ? h('button', { onclick: () => { box.remove(); state.progress = null } }, 'Dismiss') : null,
    )
  }
  const tick = async () => {
    if (stopped) return
    try {
      const dep = await api(appPath(app, `/deployments/${d.id}`))
      draw(dep)
      if (dep.finishedAt) {
        hooks.refreshApp(app, false)
        return
      }
    } catch (err) {
      if (err.status === 401) return
    }
    timer = setTimeout(tick, 400)
  }
  draw(d)
  state.progress = { stop: () => { stopped = true; clearTimeout(timer) }, box }
  tick()
}

export function stepsList(dep, open) {
  return h('ol', { class: 'steps' }, dep.steps.map((s) => h('li', { class: `step ${s.state}`, dataset: { step: s.name } },
    h('span', { class: 'step-name' }, s.name), ' ', h('span', { class: 'step-state' }, s.state), ' ', h('span', { class: 'step-time' }, stepTime(s)),
    s.output ? h('details', { open: open && s.state === 'running' ? true : null }, h('summary', null, 'output'), h('pre', null, s.output)) : null)))
}
