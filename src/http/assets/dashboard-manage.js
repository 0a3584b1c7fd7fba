// What the app page manages besides settings: the environment (names shown, values write-only: typed into a
// password field, sent once with PATCH, never read back), release uploads from the browser with their
// progress, and the app's public address.

import { $, api, appPath, ask, bytes, h, hooks, may, notice, state } from './dashboard-core.js'
import { run } from './dashboard-actions.js'

/**
 * The section as it is when nothing changed since it was drawn, or when the operator is typing in it: a
 * re-render after an audit event must neither wipe a half-typed form nor the line saying what was just done.
 */
export function kept(id, app, key) {
  const old = $(id)
  if (old && old.dataset.app === app && (old.dataset.key === key || old.dataset.dirty === 'true' || old.dataset.busy === 'true')) return old
  return null
}

// ---- environment ----

export function envSection(app, names, keep, message = null) {
  const key = JSON.stringify(names)
  const old = keep ? kept('env', app, key) : null
  if (old) return old
  const admin = may('manage')
  const section = h('section', { id: 'env', class: 'panel', dataset: { app, key } }, h('h2', null, 'Environment'),
    h('p', { class: 'hint' }, 'Names only: berth never shows the values.', admin ? ' A value is sent once and cannot be read back; changes take effect at the next start or restart.' : ''),
    names.length
      ? h('ul', { class: 'env-names' }, names.map((n) => h('li', { dataset: { name: n } }, h('code', null, n),
        admin ? h('button', { type: 'button', class: 'env-unset', title: `Unset ${n}`, 'aria-label': `Unset ${n}`, onclick: () => unsetEnv(app, n) }, '×') : null)))
      : h('p', { class: 'empty' }, 'No variables.'),
    message ? h('p', { id: 'env-result', class: 'ok', role: 'status' }, message) : null)
  section.append(...(admin ? envForm(app, names, section) : [h('p', { class: 'hint' }, 'Setting variables needs the admin scope.')]))
  return section
}

function envForm(app, names, section) {
  const name = h('input', { id: 'env-name', required: true, pattern: '[A-Za-z_][A-Za-z0-9_]{0,127}', placeholder: 'NAME', autocomplete: 'off', spellcheck: 'false' })
  // A password field: the value is not shown while typed, and browsers neither keep nor offer it again.
  const value = h('input', { id: 'env-value', type: 'password', placeholder: 'value', autocomplete: 'new-password', spellcheck: 'false' })
  const go = h('button', { id: 'env-set-go', type: 'submit' }, 'Set')
  const error = h('p', { id: 'env-error', class: 'error', role: 'alert' })
  const dirty = () => {
    section.dataset.dirty = String(name.value !== '' || value.value !== '')
    go.textContent = names.includes(name.value) ? 'Replace' : 'Set'
  }
  const form = h('form', { id: 'env-set', class: 'inline-form', autocomplete: 'off', oninput: dirty, onsubmit: async (ev) => {
    ev.preventDefault()
    error.textContent = ''
    go.disabled = true
    const n = name.value.trim()
    try {
      const res = await api(appPath(app, '/env'), { method: 'PATCH', body: { set: { [n]: value.value } } })
      // The value leaves the page with the request: nothing keeps it, not even the field.
      value.value = ''
      section.replaceWith(envSection(app, res.names, false, `${n} ${names.includes(n) ? 'replaced' : 'set'}; it takes effect at the next start or restart.`))
    } catch (err) {
      value.value = ''
      error.textContent = `${err.code ?? 'ERROR'}: ${err.message}`
      go.disabled = false
    }
  } }, h('label', null, 'name ', name), ' ', h('label', null, 'value ', value), ' ', go)
  return [form, error]
}

async function unsetEnv(app, name) {
  const ok = await ask(`Unset ${name} on ${app}?`, [h('p', null, 'Its value is removed from berth and cannot be shown or recovered. The node keeps it until its next start or restart.')], `Unset ${name}`)
  if (!ok) return
  try {
    const res = await api(appPath(app, '/env'), { method: 'PATCH', body: { unset: [name] } })
    $('env')?.replaceWith(envSection(app, res.names, false, `${name} unset; it takes effect at the next start or restart.`))
  } catch (err) {
    notice(`${err.code ?? 'ERROR'}: ${err.message}`)
  }
}

// ---- upload ----

/** The upload form on the app page; kept across re-renders while an upload runs or its result shows. */
export function uploadSection(app, keep) {
  if (!may('deploy')) return null
  const old = keep ? kept('upload', app, 'upload') : null
  if (old) return old
  const file = h('input', { id: 'upload-file', type: 'file', accept: '.tar.gz,.tgz,application/gzip,application/x-gzip' })
  const deploy = h('input', { id: 'upload-deploy', type: 'checkbox' })
  const go = h('button', { id: 'upload-go', type: 'submit' }, 'Upload')
  const cancel = h('button', { id: 'upload-cancel', type: 'button', hidden: true }, 'Cancel')
  const bar = h('progress', { id: 'upload-progress', max: 100, value: 0, hidden: true })
  const status = h('span', { id: 'upload-state', role: 'status' })
  const section = h('div', { id: 'upload', dataset: { app, key: 'upload' } }, h('h3', null, 'Upload a release'),
    h('form', { class: 'inline-form', onsubmit: (ev) => {
      ev.preventDefault()
      const f = file.files?.[0]
      if (!f) return (status.textContent = 'Choose a release tarball (APP-VSN.tar.gz) first.')
      sendRelease(app, f, deploy.checked, { section, go, cancel, bar, status })
    } }, file, ' ', h('label', null, deploy, ' deploy it right after'), ' ', go, ' ', cancel),
    h('div', { class: 'upload-progress' }, bar, ' ', status))
  return section
}

function sendRelease(app, file, deployAfter, { section, go, cancel, bar, status }) {
  // XMLHttpRequest, not fetch: only it reports how much of a request body has been sent.
  const xhr = new XMLHttpRequest()
  const show = (pct, text) => {
    bar.value = pct
    bar.dataset.pct = String(pct)
    status.textContent = text
  }
  const end = () => {
    section.dataset.busy = 'false'
    go.disabled = false
    cancel.hidden = true
  }
  section.dataset.busy = 'true'
  go.disabled = true
  cancel.hidden = false
  bar.hidden = false
  cancel.onclick = () => xhr.abort()
  show(0, `0% of ${bytes(file.size)}`)
  xhr.upload.addEventListener('progress', (e) => {
    const total = e.lengthComputable ? e.total : file.size
    show(Math.floor((e.loaded / total) * 100), `${Math.floor((e.loaded / total) * 100)}% of ${bytes(total)}`)
  })
  // Every byte is sent; berth still checks and unpacks the release before it answers.
  xhr.upload.addEventListener('load', () => show(100, `100% of ${bytes(file.size)} sent; berth is checking and unpacking it…`))
  xhr.addEventListener('load', async () => {
    end()
    let body = null
    try {
      body = JSON.parse(xhr.responseText)
    } catch {}
    if (xhr.status === 401 && state.me) return hooks.signOut('The token is no longer valid (revoked or expired); sign in again.')
    if (xhr.status !== 200 && xhr.status !== 201) {
      status.textContent = `Upload failed: ${body?.code ?? `HTTP ${xhr.status}`}: ${body?.detail ?? xhr.statusText}`
      status.className = 'error'
      return
    }
    status.className = 'ok'
    status.textContent = `${xhr.status === 201 ? 'Uploaded' : 'Already uploaded:'} ${body.version} (${body.id}).`
    await hooks.refreshApp(app, false)
    if (deployAfter) await run(app, () => api(appPath(app, '/deployments'), { method: 'POST', body: { release: body.id } }))
  })
  xhr.addEventListener('error', () => {
    end()
    status.className = 'error'
    status.textContent = 'Upload failed: the connection to berth broke.'
  })
  xhr.addEventListener('abort', () => {
    end()
    status.className = 'error'
    status.textContent = 'Upload cancelled; berth keeps nothing of it.'
  })
  status.className = ''
  xhr.open('POST', appPath(app, '/releases'))
  xhr.setRequestHeader('authorization', `Bearer ${state.token}`)
  xhr.setRequestHeader('accept', 'application/json')
  // A raw body: berth reads any content type but multipart as the tarball itself.
  xhr.setRequestHeader('content-type', 'application/octet-stream')
  xhr.send(file)
}

// ---- the public address ----

/**
 * Where users reach the app: the publicUrl setting, else the proxy's listener (a wildcard host replaced by
 * the host this page was opened on). Without either berth cannot know it (the app listens where its env says).
 */
export function publicAddress(settings, status) {
  let url = settings?.publicUrl ?? null
  let from = 'publicUrl setting'
  if (!url && status.proxy?.listen) {
    const m = /^(.*):(\d+)$/.exec(status.proxy.listen)
    if (m) {
      const host = m[1] === '0.0.0.0' || m[1] === '[::]' ? (location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname) : m[1]
      url = `http://${host}:${m[2]}/`
      from = 'proxy.listen'
    }
  }
  if (!url) return null
  let parsed = null
  try {
    parsed = new URL(url)
  } catch {}
  // berth refuses other schemes; checked here too, since an href is where a javascript: URL would run.
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) return h('span', { class: 'public-url' }, url)
  return h('span', null, h('a', { class: 'public-url', href: parsed.href, target: '_blank', rel: 'noopener noreferrer' }, url), h('small', { class: 'hint' }, ` (${from})`))
}
