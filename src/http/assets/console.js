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

  $('connect').addEventListener('submit', function (ev) {
    ev.preventDefault()
    var token = tokenInput.value.trim()
    sessionStorage.setItem('berth-token', token)
    var kind = document.querySelector('input[name=kind]:checked').value
    if (ws) ws.close(1000, 'reconnect')
    term.reset()
    status('connecting…')
    ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/apps/' + encodeURIComponent(app) + '/' + kind)
    ws.binaryType = 'arraybuffer'
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: 'auth', token: token }))
      sendResize()
      status('connected (' + kind + ')')
      term.focus()
    }
    ws.onmessage = function (ev) {
      if (typeof ev.data === 'string') {
        var msg = JSON.parse(ev.data)
        if (msg.type === 'exit') status('session ended (exit code ' + msg.code + ')')
        if (msg.type === 'error') status(msg.code + ': ' + msg.detail, true)
        return
      }
      term.write(new Uint8Array(ev.data))
    }
    ws.onclose = function (ev) {
      if (ev.code >= 4000) status('refused: ' + (ev.reason || ev.code), true)
      else if (!/ended|error/.test($('status').textContent)) status('disconnected' + (ev.reason ? ': ' + ev.reason : ''), ev.code !== 1000)
      ws = null
    }
  })
})()
