// The settings editor on the app page: every setting GET settings returns, as a form (numbers, switches,
// expressions, the command map, restart policy and the proxy), sending only what changed with PUT; berth
// validates, and its problem (code, detail, field) is shown next to the form. Read-only below admin.

import { api, appPath, problemText, type ApiError } from './api.js'
import { h } from './dom.js'
import type { Settings } from './schemas.js'
import { changedNames, changes, choiceValue, hostsText, readChoice, readHosts, readText, shownText, type FieldValue, type Values } from './settings-patch.js'
import { may } from './state.js'
import { kept } from './ui.js'

/** Hints for the settings this page knows; one it does not know (a newer berth) is edited by its value's type. */
const HINTS: Record<string, string> = {
  migrateExpr: 'empty: the release\'s own *.Release.migrate(); "" (two quotes): the app has no migrations',
  rollbackExpr: 'run on a rollback when asked; VERSION is replaced by the target\'s version',
  healthUrl: 'http:// on loopback that must answer 2xx; empty: none',
  publicUrl: 'where users reach the app (http or https); empty: the first of proxy.hosts, else proxy.listen',
  commands: 'bin/APP subcommands; empty: the default of the release\'s kind',
  limits: 'JSON, e.g. {"memoryMax": "512M", "cpuQuota": 150, "tasksMax": 1024}; empty: none. The app\'s status says what this host enforces',
  proxy: 'haproxy in front of two instances for zero-downtime switches: on its own listen address and/or on the host\'s shared edge by hostname (hosts)',
}
/** Strings where an empty field means null; a setting of unknown type reads its field as JSON when it parses. */
const TEXT = new Set(['migrateExpr', 'rollbackExpr', 'healthUrl', 'publicUrl', 'releaseName'])
const COMMAND_ROLES = ['start', 'eval', 'rpc', 'remote', 'stop', 'pid']
/** Berth's defaults, shown while the proxy is off (src/apps/proxy-settings.ts DEFAULT_PROXY). */
const PROXY_FIELDS: Record<string, unknown> = { listen: null, drainTimeoutMs: 30000, healthPath: '/health', hosts: [], tls: null, httpsRedirect: null, hstsMaxAge: null, maxBodyBytes: null, timeoutMs: 60000 }
/** The proxy's fields shown as selects: [value, label] of each option, '' being berth's default (null). */
const PROXY_CHOICES: Record<string, [string, string][]> = {
  tls: [['', 'default: acme with an HTTPS listener, else off'], ['acme', 'acme'], ['custom', 'custom (berth certs put)'], ['off', 'off (plain HTTP)']],
  httpsRedirect: [['', 'default: on with TLS'], ['true', 'on (308 to https)'], ['false', 'off']],
}
/** Numbers whose empty field is null (berth's default), rather than a JSON text field. */
const PROXY_NUMBERS = new Set(['drainTimeoutMs', 'hstsMaxAge', 'maxBodyBytes', 'timeoutMs'])
const PROXY_HINTS: Record<string, string> = {
  listen: 'HOST:PORT, e.g. 0.0.0.0:80; empty: only on the edge',
  hosts: 'shop.example.com, www.shop.example.com',
  hstsMaxAge: 'seconds; empty: no HSTS header',
  maxBodyBytes: 'bytes; empty: no limit',
}

/** One field of the form: its element, where its value goes in the settings, and how to read it. */
interface Input extends FieldValue {
  el: HTMLInputElement | HTMLSelectElement
}

export function settingsSection(app: string, settings: Settings, keep: boolean): HTMLElement {
  const key = JSON.stringify(settings)
  const old = keep ? kept('settings', app, key) : null
  if (old) return old
  return build(app, settings, null)
}

function build(app: string, settings: Settings, message: string | null): HTMLElement {
  const admin = may('manage')
  const inputs: Input[] = []
  const rows = Object.entries(settings).map(([k, v]) => row(k, v, inputs))
  const error = h('p', { id: 'settings-error', class: 'error', role: 'alert' })
  const save = h('button', { id: 'settings-save', type: 'submit', class: 'danger' }, 'Save changes')
  const section: HTMLElement = h('section', { id: 'settings', class: 'panel', dataset: { app, key: JSON.stringify(settings) } })
  const form = h('form', { id: 'settings-form', autocomplete: 'off', oninput: () => (section.dataset.dirty = 'true'), onsubmit: async (ev) => {
    ev.preventDefault()
    error.textContent = ''
    for (const i of inputs) i.el.removeAttribute('aria-invalid')
    const patch = changes(settings as { proxy?: Values | null }, inputs)
    if (Object.keys(patch).length === 0) return (error.textContent = 'Nothing changed.')
    save.disabled = true
    try {
      const { warnings, ...saved } = await api<Settings & { warnings?: string[] }>(appPath(app, '/settings'), { method: 'PUT', body: patch })
      // Saved, but not (all) in effect here, e.g. a limit the host cannot enforce: said with the result.
      section.replaceWith(build(app, saved, `Saved: ${changedNames(patch).join(', ')}.${warnings?.length ? ` But: ${warnings.join(' ')}` : ''}`))
    } catch (err) {
      save.disabled = false
      error.textContent = problemText(err)
      // The field the problem names (or its detail's "Setting X must…"), so the operator sees where.
      const e = err as ApiError
      const field = e.field ?? /Setting ([\w.]+) /.exec(e.message)?.[1]
      const bad = inputs.find((i) => i.path.join('.') === field) ?? inputs.find((i) => field && i.path[0] === field.split('.')[0])
      if (bad) {
        bad.el.setAttribute('aria-invalid', 'true')
        bad.el.focus()
      }
    }
  } },
  h('fieldset', { disabled: !admin }, h('div', { class: 'settings-grid' }, rows)),
  admin ? h('p', { class: 'actions' }, save, h('button', { type: 'button', onclick: () => section.replaceWith(build(app, settings, null)) }, 'Discard changes')) : h('p', { class: 'hint' }, 'Changing settings needs the admin scope.'),
  error)
  section.append(h('h2', null, 'Settings'), message ? h('p', { id: 'settings-result', class: 'ok', role: 'status' }, message) : '', form,
    h('details', null, h('summary', null, 'As JSON (what berth settings APP get prints)'), h('pre', null, JSON.stringify(settings, null, 2))))
  return section
}

/** One setting: its label and field(s); each field is recorded in `inputs` with its path and how to read it. */
function row(key: string, value: unknown, inputs: Input[]) {
  const id = `set-${key}`
  const label = h('label', { for: id }, key)
  const hint = HINTS[key] ? h('small', { class: 'hint' }, HINTS[key]) : null
  if (key === 'proxy') return [label, h('div', null, proxyFields(value as Values | null, inputs), hint)]
  if (key === 'commands') return [label, h('div', null, group(key, Object.fromEntries(COMMAND_ROLES.map((r) => [r, (value as Values | null)?.[r] ?? null])), inputs, 'text'), hint)]
  if (value && typeof value === 'object' && !Array.isArray(value)) return [label, h('div', null, group(key, value as Values, inputs, null), hint)]
  return [label, h('div', null, field([key], value, id, inputs, TEXT.has(key) ? 'text' : null), hint)]
}

function group(key: string, obj: Values, inputs: Input[], kind: 'text' | null) {
  return h('div', { class: 'settings-group' }, Object.entries(obj).map(([k, v]) =>
    h('label', null, h('span', null, k), field([key, k], v, `set-${key}-${k}`, inputs, kind))))
}

/** A field by the value's type: a number, a switch, or text (text fields of unknown settings hold JSON). */
function field(path: string[], value: unknown, id: string, inputs: Input[], kind: 'text' | null): HTMLInputElement {
  let el: HTMLInputElement
  let read: () => unknown
  if (kind !== 'text' && typeof value === 'boolean') {
    el = h('input', { id, type: 'checkbox', checked: value })
    read = () => el.checked
  } else if (kind !== 'text' && typeof value === 'number') {
    el = h('input', { id, type: 'number', step: 1, value: String(value) })
    // An empty or odd field is sent as it is, and berth's answer says what is wrong with it.
    read = () => (el.value === '' ? null : Number(el.value))
  } else {
    el = h('input', { id, type: 'text', value: shownText(value, kind), spellcheck: 'false', placeholder: value === null ? 'null (default)' : null })
    read = () => readText(el.value, kind, value)
  }
  inputs.push({ path, el, read, value })
  return el
}

function proxyFields(value: Values | null, inputs: Input[]) {
  const on = h('input', { id: 'set-proxy-on', type: 'checkbox', checked: value !== null })
  // Off, the fields show the defaults berth would take (listen has none; it or hosts must be given).
  const fields = Object.entries(PROXY_FIELDS).map(([k, d]) =>
    h('label', null, h('span', null, k), proxyField(k, value === null ? d : (value[k] ?? d), inputs)))
  const box = h('div', { class: 'settings-group', hidden: value === null }, fields)
  on.addEventListener('change', () => (box.hidden = !on.checked))
  inputs.push({ path: ['proxy'], el: on, read: () => on.checked, value: value !== null, proxySwitch: true })
  return [h('label', null, on, ' on'), box]
}

/** One proxy field: hosts as a list in one line, the TLS choices as selects, numbers where empty is null. */
function proxyField(k: string, value: unknown, inputs: Input[]): HTMLElement {
  const id = `set-proxy-${k}`
  const path = ['proxy', k]
  const placeholder = PROXY_HINTS[k] ?? null
  if (k === 'hosts') {
    const el = h('input', { id, type: 'text', value: hostsText(value), spellcheck: 'false', placeholder })
    inputs.push({ path, el, read: () => readHosts(el.value), value })
    return el
  }
  const choices = PROXY_CHOICES[k]
  if (choices) {
    const el = h('select', { id }, choices.map(([v, label]) => h('option', { value: v, selected: v === choiceValue(value) }, label)))
    inputs.push({ path, el, read: () => readChoice(el.value), value })
    return el
  }
  if (PROXY_NUMBERS.has(k)) {
    const el = h('input', { id, type: 'number', min: 0, step: 1, value: value === null ? '' : String(value), placeholder })
    inputs.push({ path, el, read: () => (el.value === '' ? null : Number(el.value)), value })
    return el
  }
  const el = field(path, value, id, inputs, 'text')
  if (placeholder) el.placeholder = placeholder
  return el
}
