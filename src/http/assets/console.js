// berth web console: xterm.js over berth's terminal websocket. The token is kept in sessionStorage (never in
// the URL) and sent as the first frame, since browsers cannot set headers on a websocket.
(function () {
  'use strict'
  var app = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '')
  var $ = function (id) { return document.getElementById(id) }
  $('app').textContent = app
  var tokenInput = $('token')
  tokenInput.value = sessionStorage.getItem('berth-token') || ''
  var term = new Terminal({ cursorBlink: true, convertEol: false, scrollback: 5000, fontFamily: 'monospace' })
  var fit = new FitAddon.FitAddon()
  term.loadAddon(fit)
  term.open($('terminal'))
  fit.fit()
  var ws = null
  var encoder = new TextEncoder()

  function status(text, error) {
    $('status').textContent = text
    $('status').className = error ? 'error' : ''
  }

  function sendResize() {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }))
  }

  term.onData(function (data) {
    if (ws && ws.readyState === 1) ws.send(encoder.encode(data))
  })
  window.addEventListener('resize', function () {
    fit.fit()
    sendResize()
  })

  // Each socket's handlers act on that socket only: a replaced socket closes late (after the next one is
  // created), and its onclose must neither clear the live socket nor overwrite the status of the new one.
  function connect(token, kind) {
    sessionStorage.setItem('berth-token', token)
    var old = ws
    ws = null
    if (old) old.close(1000, 'reconnect')
    term.reset()
    status('connecting…')
    var sock = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/apps/' + encodeURIComponent(app) + '/' + kind)
    sock.binaryType = 'arraybuffer'
    ws = sock
    var ended = false
    sock.onopen = function () {
      if (ws !== sock) return
      sock.send(JSON.stringify({ type: 'auth', token: token }))
      sendResize()
      status('connected (' + kind + ')')
      term.focus()
    }
    sock.onmessage = function (ev) {
      if (ws !== sock) return
      if (typeof ev.data === 'string') {
        var msg = JSON.parse(ev.data)
        if (msg.type === 'exit') { ended = true; status('session ended (exit code ' + msg.code + ')') }
        if (msg.type === 'error') { ended = true; status(msg.code + ': ' + msg.detail, true) }
        return
      }
      term.write(new Uint8Array(ev.data))
    }
    sock.onclose = function (ev) {
      if (ws !== sock) return
      ws = null
      if (ev.code >= 4000) status('refused: ' + (ev.reason || ev.code), true)
      else if (!ended) status('disconnected' + (ev.reason ? ': ' + ev.reason : ''), ev.code !== 1000)
    }
  }

  $('connect').addEventListener('submit', function (ev) {
    ev.preventDefault()
    connect(tokenInput.value.trim(), document.querySelector('input[name=kind]:checked').value)
  })

  // Opened from the dashboard as /console/APP#remote or #attach: the tab inherited the dashboard's
  // sessionStorage (window.open from the same origin copies it), so it connects at once, signed in.
  var wanted = location.hash.slice(1)
  if (tokenInput.value && (wanted === 'remote' || wanted === 'attach')) {
    document.querySelector('input[name=kind][value=' + wanted + ']').checked = true
    connect(tokenInput.value, wanted)
  }
})()
