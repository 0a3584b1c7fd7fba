// The web console page: xterm.js over berth's terminal websocket for one app (remote IEx or attach). The token
// is kept in sessionStorage (never in the URL) and sent as the first frame: browsers cannot set websocket headers.

import { $ } from './dom.js'
import { terminalUrl, type TerminalKind as Kind } from './paths.js'
import { savedToken, saveToken } from './token.js'
import { xterm } from './xterm.js'

const app = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() ?? '')
$('app').textContent = app
const tokenInput = $<HTMLInputElement>('token')
tokenInput.value = savedToken() ?? ''
const { Terminal, FitAddon } = xterm()
const term = new Terminal({ cursorBlink: true, convertEol: false, scrollback: 5000, fontFamily: 'monospace' })
const fit = new FitAddon.FitAddon()
term.loadAddon(fit)
term.open($('terminal'))
fit.fit()
let ws: WebSocket | null = null
const encoder = new TextEncoder()

function status(text: string, error = false): void {
  const el = $('status')
  el.textContent = text
  el.className = error ? 'error' : ''
}

function sendResize(): void {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }))
}

term.onData((data) => {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data))
})
window.addEventListener('resize', () => {
  fit.fit()
  sendResize()
})

// Each socket's handlers act on that socket only: a replaced socket closes late (after the next one is
// created), and its onclose must neither clear the live socket nor overwrite the status of the new one.
function connect(token: string, kind: Kind): void {
  saveToken(token)
  const old = ws
  ws = null
  if (old) old.close(1000, 'reconnect')
  term.reset()
  status('connecting…')
  const sock = new WebSocket(terminalUrl(location, app, kind))
  sock.binaryType = 'arraybuffer'
  ws = sock
  let ended = false
  sock.onopen = () => {
    if (ws !== sock) return
    sock.send(JSON.stringify({ type: 'auth', token }))
    sendResize()
    status(`connected (${kind})`)
    term.focus()
  }
  sock.onmessage = (ev: MessageEvent<string | ArrayBuffer>) => {
    if (ws !== sock) return
    if (typeof ev.data === 'string') {
      const msg = JSON.parse(ev.data) as { type: string; code?: string | number; detail?: string }
      if (msg.type === 'exit') {
        ended = true
        status(`session ended (exit code ${msg.code})`)
      }
      if (msg.type === 'error') {
        ended = true
        status(`${msg.code}: ${msg.detail}`, true)
      }
      return
    }
    term.write(new Uint8Array(ev.data))
  }
  sock.onclose = (ev) => {
    if (ws !== sock) return
    ws = null
    if (ev.code >= 4000) status(`refused: ${ev.reason || ev.code}`, true)
    else if (!ended) status(`disconnected${ev.reason ? `: ${ev.reason}` : ''}`, ev.code !== 1000)
  }
}

$('connect').addEventListener('submit', (ev) => {
  ev.preventDefault()
  connect(tokenInput.value.trim(), document.querySelector<HTMLInputElement>('input[name=kind]:checked')!.value as Kind)
})

// Opened from the dashboard as /console/APP#remote or #attach: the tab inherited the dashboard's
// sessionStorage (window.open from the same origin copies it), so it connects at once, signed in.
const wanted = location.hash.slice(1)
if (tokenInput.value && (wanted === 'remote' || wanted === 'attach')) {
  document.querySelector<HTMLInputElement>(`input[name=kind][value=${wanted}]`)!.checked = true
  connect(tokenInput.value, wanted)
}
