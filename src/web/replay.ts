// Replays a console session's asciicast recording in an xterm on the app page, with its real timing (long
// pauses cut short) at the terminal size the session had.

import { apiRaw, appPath } from './api.js'
import { readCast } from './cast.js'
import { $, find, h } from './dom.js'
import type { Session } from './schemas.js'
import { state } from './state.js'
import { notice } from './ui.js'
import { xterm } from './xterm.js'

export async function replay(app: string, session: Session): Promise<void> {
  state.replay?.dispose()
  let text: string
  try {
    text = await (await apiRaw(appPath(app, `/sessions/${session.id}.cast`))).text()
  } catch (err) {
    return notice(`Cannot replay ${session.id}: ${(err as Error).message}`)
  }
  const { header, frames } = readCast(text)
  const holder = find('replay') ?? h('div', { id: 'replay' })
  if (!holder.isConnected) $('sessions').append(holder)
  const screen = h('div', { class: 'replay-screen' })
  const close = h('button', { onclick: () => { state.replay?.dispose(); state.replay = null } }, 'Close')
  holder.replaceChildren(h('p', null, `Recording of ${session.kind} session ${session.id} by ${session.actor ?? '-'} (${header.width}×${header.height}) `, h('span', { id: 'replay-state' }, 'playing…'), ' ', close), screen)
  const term = new (xterm().Terminal)({ cols: header.width || 80, rows: header.height || 24, convertEol: false, disableStdin: true, fontFamily: 'monospace', fontSize: 13 })
  term.open(screen)
  let timer: ReturnType<typeof setTimeout> | undefined
  let i = 0
  let disposed = false
  const next = () => {
    if (disposed) return
    const frame = frames[i++]
    if (!frame) {
      $('replay-state').textContent = 'done'
      return
    }
    if (frame.kind === 'r') {
      timer = setTimeout(() => {
        term.resize(frame.cols, frame.rows)
        next()
      }, 0)
    } else {
      timer = setTimeout(() => term.write(frame.data, next), frame.waitMs)
    }
  }
  next()
  state.replay = { dispose: () => { disposed = true; clearTimeout(timer); term.dispose(); holder.remove() } }
}
