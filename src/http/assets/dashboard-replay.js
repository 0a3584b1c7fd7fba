// Replays a console session's asciicast recording in an xterm on the app page, with its real timing (long
// pauses cut short) at the terminal size the session had.

import { $, api, appPath, h, notice, state } from './dashboard-core.js'

export async function replay(app, session) {
  state.replay?.dispose()
  let text
  try {
    text = await (await api(appPath(app, `/sessions/${session.id}.cast`), { raw: true })).text()
  } catch (err) {
    return notice(`Cannot replay ${session.id}: ${err.message}`)
  }
  const [header, ...events] = text.trim().split('\n').map((l) => JSON.parse(l))
  const holder = $('replay') ?? h('div', { id: 'replay' })
  if (!holder.isConnected) $('sessions').append(holder)
  const screen = h('div', { class: 'replay-screen' })
  const close = h('button', { onclick: () => { state.replay?.dispose(); state.replay = null } }, 'Close')
  holder.replaceChildren(h('p', null, `Recording of ${session.kind} session ${session.id} by ${session.actor ?? '-'} (${header.width}×${header.height}) `, h('span', { id: 'replay-state' }, 'playing…'), ' ', close), screen)
  const term = new window.Terminal({ cols: header.width || 80, rows: header.height || 24, convertEol: false, disableStdin: true, fontFamily: 'monospace', fontSize: 13 })
  term.open(screen)
  let timer = null
  let i = 0
  let last = 0
  // Real timing, with pauses longer than half a second cut short: a session idle for minutes replays in seconds.
  let disposed = false
  const next = () => {
    if (disposed) return
    while (i < events.length && events[i][1] !== 'o' && events[i][1] !== 'r') i++
    if (i >= events.length) {
      $('replay-state').textContent = 'done'
      return
    }
    const [t, kind, data] = events[i++]
    const wait = Math.min(Math.max(0, t - last), 0.5) * 1000
    last = t
    // A resize ("COLSxROWS") during the session: the output after it was laid out for that size.
    const size = kind === 'r' && /^(\d+)x(\d+)$/.exec(data)
    timer = setTimeout(() => (size ? (term.resize(Number(size[1]), Number(size[2])), next()) : term.write(data, next)), kind === 'r' ? 0 : wait)
  }
  next()
  state.replay = { dispose: () => { disposed = true; clearTimeout(timer); term.dispose(); holder.remove() } }
}
