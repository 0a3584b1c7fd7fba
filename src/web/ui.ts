// The dashboard's shared widgets: the notice line, the confirm dialog, definition lists and tables. Every value
// from the API goes in as text through h() and fill().

import { $, fill, h } from './dom.js'

type Cell = Parameters<typeof h>[2]

export function notice(text: string, kind = 'error'): void {
  const n = $('notice')
  n.textContent = text
  n.className = kind
  n.hidden = !text
}

export function dl(pairs: readonly (readonly [string, Cell])[]): HTMLDListElement {
  return h('dl', null, pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]))
}

export interface Row {
  class?: string
  dataset?: Record<string, string>
  cells: Cell[]
}

export function table(head: readonly string[], rows: readonly Row[]): HTMLDivElement {
  return h('div', { class: 'table' }, h('table', null, h('thead', null, h('tr', null, head.map((c) => h('th', null, c)))),
    h('tbody', null, rows.length ? rows.map((r) => h('tr', { class: r.class || null, dataset: r.dataset }, r.cells.map((c) => h('td', null, c)))) : h('tr', null, h('td', { colspan: head.length, class: 'empty' }, 'none')))))
}

/** The confirm dialog: resolves true when the operator confirms. */
export function ask(title: string, body: Cell, okLabel: string): Promise<boolean> {
  const dialog = $<HTMLDialogElement>('confirm')
  $('confirm-title').textContent = title
  fill($('confirm-body'), body)
  const ok = $<HTMLButtonElement>('confirm-ok')
  ok.textContent = okLabel
  ok.disabled = false
  dialog.returnValue = ''
  dialog.showModal()
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }))
}

/**
 * The section as it is when nothing changed since it was drawn, or when the operator is typing in it: a
 * re-render after an audit event must neither wipe a half-typed form nor the line saying what was just done.
 */
export function kept(id: string, app: string, key: string): HTMLElement | null {
  const old = document.getElementById(id)
  if (old && old.dataset.app === app && (old.dataset.key === key || old.dataset.dirty === 'true' || old.dataset.busy === 'true')) return old
  return null
}
