// The app's environment on its page: names shown, values write-only (typed into a password field, sent once
// with PATCH, never read back), set and unset by admin tokens.

import { api, appPath, problemText } from './api.js'
import { find, h } from './dom.js'
import { may } from './state.js'
import { ask, kept, notice } from './ui.js'

export function envSection(app: string, names: string[], keep: boolean, message: string | null = null): HTMLElement {
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

function envForm(app: string, names: string[], section: HTMLElement): HTMLElement[] {
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
      const res = await api<{ names: string[] }>(appPath(app, '/env'), { method: 'PATCH', body: { set: { [n]: value.value } } })
      // The value leaves the page with the request: nothing keeps it, not even the field.
      value.value = ''
      section.replaceWith(envSection(app, res.names, false, `${n} ${names.includes(n) ? 'replaced' : 'set'}; it takes effect at the next start or restart.`))
    } catch (err) {
      value.value = ''
      error.textContent = problemText(err)
      go.disabled = false
    }
  } }, h('label', null, 'name ', name), ' ', h('label', null, 'value ', value), ' ', go)
  return [form, error]
}

async function unsetEnv(app: string, name: string): Promise<void> {
  const ok = await ask(`Unset ${name} on ${app}?`, [h('p', null, 'Its value is removed from berth and cannot be shown or recovered. The node keeps it until its next start or restart.')], `Unset ${name}`)
  if (!ok) return
  try {
    const res = await api<{ names: string[] }>(appPath(app, '/env'), { method: 'PATCH', body: { unset: [name] } })
    find('env')?.replaceWith(envSection(app, res.names, false, `${name} unset; it takes effect at the next start or restart.`))
  } catch (err) {
    notice(problemText(err))
  }
}
