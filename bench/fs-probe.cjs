// Preload for the berth daemon that times its filesystem calls and the phases of each upload, without changing
// src/. Used to find where an upload's time goes:
//
//   FS_PROBE_OUT=/tmp/probe.jsonl node dist/bench/intake.js --node-options "--require ./bench/fs-probe.cjs" ...
//
// Writes one JSON line per upload request (POST/PUT ... /releases) when its response finishes:
//   phases (ms from the request's arrival): bodyEnd (last byte received), firstFile/lastWrite (file data),
//   lastFileSync, dirSyncs (start..end of the directory fsyncs), rename (moved into place), finish (response sent);
//   ops: per fs call, { n, totalMs (summed latency, calls overlap), maxMs }.
// Calls are attributed to the upload in flight (the benchmark sends one at a time).
'use strict'
const fs = require('node:fs')
const http = require('node:http')
const { constants } = fs

const out = process.env.FS_PROBE_OUT
if (out) {
  const fd = fs.openSync(out, 'a')
  const now = () => performance.now()
  let cur = null
  const reset = (t0) => {
    cur = { t0, phases: {}, ops: {} }
  }
  const mark = (name, first = false) => {
    if (!cur) return
    const t = now() - cur.t0
    if (first && cur.phases[name] !== undefined) return
    cur.phases[name] = Math.round(t)
  }
  const op = (name, ms) => {
    if (!cur) return
    const o = (cur.ops[name] ??= { n: 0, totalMs: 0, maxMs: 0 })
    o.n++
    o.totalMs += ms
    if (ms > o.maxMs) o.maxMs = ms
  }
  const dirHandles = new WeakSet()
  const wrap = (obj, name, label = name, after) => {
    const orig = obj[name]
    obj[name] = function (...args) {
      const t = now()
      const p = orig.apply(this, args)
      const self = this
      p.then((v) => {
        op(label, now() - t)
        after?.(v, args, self)
      }, () => op(`${label}!`, now() - t))
      return p
    }
  }
  let patchedHandle = false
  const patchHandle = (fh) => {
    if (patchedHandle) return
    patchedHandle = true
    const proto = Object.getPrototypeOf(fh)
    wrap(proto, 'write', 'fh.write', () => {
      mark('firstFile', true)
      mark('lastWrite')
    })
    const origSync = proto.sync
    proto.sync = function () {
      const isDir = dirHandles.has(this)
      const t = now()
      if (isDir) mark('dirSyncsStart', true)
      const p = origSync.call(this)
      p.then(() => {
        op(isDir ? 'fh.sync(dir)' : 'fh.sync(file)', now() - t)
        mark(isDir ? 'dirSyncsEnd' : 'lastFileSync')
      }, () => {})
      return p
    }
    wrap(proto, 'close', 'fh.close')
  }
  const p = fs.promises
  wrap(p, 'open', 'open', (fh, args) => {
    patchHandle(fh)
    if (typeof args[1] === 'number' && args[1] & constants.O_DIRECTORY) dirHandles.add(fh)
  })
  for (const name of ['mkdir', 'mkdtemp', 'chmod', 'readdir', 'rm', 'lstat', 'stat', 'symlink', 'link', 'readFile', 'readlink']) wrap(p, name)
  wrap(p, 'rename', 'rename', () => mark('rename'))

  const emit = http.Server.prototype.emit
  http.Server.prototype.emit = function (ev, req, res) {
    if (ev === 'request' && /\/releases\/?(\?|$)/.test(req.url) && (req.method === 'POST' || req.method === 'PUT')) {
      reset(now())
      const mine = cur
      req.on('end', () => {
        if (cur === mine) mark('bodyEnd')
      })
      res.on('finish', () => {
        if (cur !== mine) return
        mark('finish')
        const ops = Object.fromEntries(Object.entries(mine.ops).map(([k, v]) => [k, { n: v.n, totalMs: Math.round(v.totalMs), maxMs: Math.round(v.maxMs * 10) / 10 }]))
        fs.writeSync(fd, JSON.stringify({ url: req.url, status: res.statusCode, phases: mine.phases, ops }) + '\n')
        cur = null
      })
    }
    return emit.apply(this, arguments)
  }
}
