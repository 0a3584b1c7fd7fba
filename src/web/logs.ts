// The logs panel of the app page: the node's console or berth's own lines, followed or not, read as JSON lines
// (each with its time, and the marks where a boot of the node begins); only the last lines are kept.

import { apiRaw, appPath } from './api.js'
import { $, h } from './dom.js'
import type { LogLine } from './schemas.js'
import { state } from './state.js'

/** A followed log may run for hours: the page keeps its tail only. */
const LOG_LINES_KEPT = 500

export function logsSection(app: string): HTMLElement {
  const source = h('select', { id: 'logs-source', onchange: () => startLogs(app) }, h('option', { value: 'console' }, 'node console'), h('option', { value: 'berth' }, "berth's lines"), h('option', { value: 'access' }, 'edge access log'))
  const follow = h('input', { id: 'logs-follow', type: 'checkbox', checked: true, onchange: () => startLogs(app) })
  return h('section', { id: 'logs-section', class: 'panel' }, h('h2', null, 'Logs'),
    h('div', { class: 'controls' }, h('label', null, 'source ', source), h('label', null, follow, ' follow'), h('span', { id: 'logs-state' })),
    h('pre', { id: 'logs', tabindex: 0 }))
}

export async function startLogs(app: string): Promise<void> {
  state.logs?.abort()
  const ctl = new AbortController()
  state.logs = ctl
  const pre = $('logs')
  pre.textContent = ''
  const source = $<HTMLSelectElement>('logs-source').value
  const follow = $<HTMLInputElement>('logs-follow').checked
  $('logs-state').textContent = follow ? 'following…' : ''
  try {
    const res = await apiRaw(appPath(app, `/logs?lines=200&format=json&source=${source}${follow ? '&follow=true' : ''}`), { signal: ctl.signal })
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
    let partial = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4
      const parts = (partial + value).split('\n')
      partial = parts.pop()!
      pre.append(...parts.filter(Boolean).map((l) => logEntry(JSON.parse(l) as LogLine)))
      while (pre.childNodes.length > LOG_LINES_KEPT) pre.firstChild!.remove()
      if (atEnd) pre.scrollTop = pre.scrollHeight
    }
    if (state.logs === ctl) $('logs-state').textContent = follow ? 'stream ended' : ''
  } catch (err) {
    if (!ctl.signal.aborted && state.logs === ctl) $('logs-state').textContent = `logs: ${(err as Error).message}`
  }
}

/** One log entry: its time (local, full UTC time and how it was found on hover), or a separator for a boot's mark. */
function logEntry(e: LogLine): HTMLDivElement {
  const at = new Date(e.at)
  const time = h('time', { datetime: e.at, title: `${e.at} (${e.clock})` }, at.toLocaleTimeString(undefined, { hour12: false }))
  return h('div', { class: e.boot ? 'log-boot' : 'log-line' }, time, ' ', e.line)
}
