#!/usr/bin/env node
// Proxy benchmark: what the per-app haproxy (the proxy setting) costs, and what a deploy behind it costs.
//
//   npm run build && node dist/bench/proxy.js [--duration S] [--deploys N] [--json FILE]
//
//   --duration S  seconds of each steady-state run (default 10)
//   --deploys N   v1 <-> v2 deploys under load (default 3)
//   --json FILE   also write the raw results as JSON
//
// One berth (a child process, its own temp data dir and epmd) runs the fixture app hello (asked for keep-alive
// with x-hello-keep-alive: 1, which it honours on both paths) with
// proxy {listen: 127.0.0.1:PORT, drainTimeoutMs: 2000}. autocannon 9 drives GET / at 1 and 50 connections,
// direct to the live instance's private port and through the proxy, alternating, same app, same run.
// Then, through the proxy at 50 connections, a deploy to the other version: every response is timed and
// counted, and latency during the switch (from the start of `routing` to the end of `draining`) is set
// against the steady seconds before the deploy. The proxy's RSS is read from /proc after 2 s idle.
// On exit or Ctrl+C every process naming the temp dir (haproxy, BEAM, run_erl, epmd) is killed.

import autocannon, { type Result } from 'autocannon'
import fs from 'node:fs'
import path from 'node:path'
import { type Berth, FIXTURES, type OptionSpec, fmt, freePort, killProcessesNaming, mdTable, onInterrupt, parseCli, percentile, procMem, request, sleep, startBerth } from './lib.js'

const OPTIONS: Record<string, OptionSpec> = {
  '--duration': { key: 'duration', type: 'int', min: 1 },
  '--deploys': { key: 'deploys', type: 'int', min: 1 },
  '--json': { key: 'json', type: 'path' },
}
const DEFAULTS = { duration: 10, deploys: 3, json: '' }

/** A string body is a file to upload. */
async function api(b: Berth, method: string, p: string, body?: unknown) {
  const res = await request(b, method, p, typeof body === 'string' ? { file: body, timeoutMs: 120_000 } : { json: body, timeoutMs: 120_000 })
  return { status: res.status, body: res.json }
}

function cannon(url: string, connections: number, duration: number, onResponse?: (client: unknown, status: number, bytes: number, ms: number) => void): Promise<Result> {
  return new Promise((resolve, reject) => {
    const inst = autocannon({ url, connections, duration, pipelining: 1, headers: { 'x-hello-keep-alive': '1' } }, (err, res) => (err ? reject(err) : resolve(res)))
    if (onResponse) inst.on('response', onResponse)
  })
}

const summary = (r: Result) => ({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx, total: r.requests.total })

async function main() {
  const opts = parseCli('bench/proxy', import.meta.url, OPTIONS, DEFAULTS)
  const berth = await startBerth({ env: { BERTH_EPMD_PORT: String(await freePort()) } })
  const cleanup = () => killProcessesNaming(berth.dataDir)
  onInterrupt('bench/proxy', async () => {
    await berth.stop()
    cleanup()
  })
  try {
    const listen = await freePort()
    const ids: Record<string, string> = {}
    for (const v of ['v1', 'v2']) ids[v] = (await api(berth, 'POST', '/v1/apps/hello/releases', path.join(FIXTURES, `${v}.tar.gz`))).body.id
    await api(berth, 'PUT', '/v1/apps/hello/settings', { stableWindowMs: 1000, proxy: { listen: `127.0.0.1:${listen}`, drainTimeoutMs: 2000 } })
    const first = await api(berth, 'POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v1 })
    if (first.status !== 200) throw new Error(`first deploy: ${JSON.stringify(first.body)}`)
    await sleep(2000)
    const app = (await api(berth, 'GET', '/v1/apps/hello')).body
    const haproxyPid = app.proxy.pid
    const idle = procMem(haproxyPid)
    const direct = () => `http://127.0.0.1:${app.proxy.live.port}/`
    const proxied = `http://127.0.0.1:${listen}/`

    const steady: { connections: number; direct: ReturnType<typeof summary>; proxy: ReturnType<typeof summary> }[] = []
    for (const connections of [1, 50]) {
      // Alternating, direct first: each pair runs on the same machine state.
      const d = summary(await cannon(direct(), connections, opts.duration))
      const p = summary(await cannon(proxied, connections, opts.duration))
      steady.push({ connections, direct: d, proxy: p })
    }
    const busy = procMem(haproxyPid)

    const deploys: { to: string; state: string; failed: number; requests: number; steadyP99: number; switchP99: number; switchMax: number; switchMs: number }[] = []
    let version = 'v1'
    for (let i = 0; i < opts.deploys; i++) {
      version = version === 'v1' ? 'v2' : 'v1'
      const samples: { at: number; ms: number; status: number }[] = []
      const started = Date.now()
      const load = cannon(proxied, 50, 20, (_client, status, _bytes, ms) => samples.push({ at: Date.now(), ms, status }))
      await sleep(5000)
      const dep = await api(berth, 'POST', '/v1/apps/hello/deployments?wait=true', { release: ids[version] })
      const res = await load
      type Step = { name: string; startedAt: string; endedAt: string }
      const step = (n: string): Step => dep.body.steps?.find((s: Step) => s.name === n) ?? dep.body.deployment?.steps.find((s: Step) => s.name === n)
      const from = Date.parse(step('routing').startedAt)
      const to = Date.parse(step('draining').endedAt)
      const before = samples.filter((s) => s.at >= started + 1000 && s.at < started + 5000).map((s) => s.ms)
      const during = samples.filter((s) => s.at >= from && s.at <= to + 200).map((s) => s.ms)
      deploys.push({
        to: version,
        state: dep.body.state ?? dep.body.deployment?.state,
        failed: res.errors + res.timeouts + res.non2xx,
        requests: res.requests.total,
        steadyP99: percentile(before, 99),
        switchP99: percentile(during, 99),
        switchMax: Math.max(...during),
        switchMs: to - from,
      })
    }

    const rows = steady.flatMap((s) => [
      [String(s.connections), 'direct', fmt(s.direct.rps), fmt(s.direct.p50, 2), fmt(s.direct.p99, 2), String(s.direct.errors + s.direct.non2xx)],
      [String(s.connections), 'proxy', `${fmt(s.proxy.rps)} (${fmt(s.proxy.rps / s.direct.rps, 2)}x)`, fmt(s.proxy.p50, 2), `${fmt(s.proxy.p99, 2)} (${s.proxy.p99 - s.direct.p99 >= 0 ? '+' : ''}${fmt(s.proxy.p99 - s.direct.p99, 2)})`, String(s.proxy.errors + s.proxy.non2xx)],
    ])
    console.log(mdTable(['conns', 'to', 'req/s', 'p50 ms', 'p99 ms', 'failed'], rows))
    console.log()
    console.log(mdTable(['deploy to', 'state', 'requests', 'failed', 'p99 steady ms', 'p99 switch ms', 'max switch ms', 'routing+draining ms'], deploys.map((d) => [d.to, d.state, String(d.requests), String(d.failed), fmt(d.steadyP99, 1), fmt(d.switchP99, 1), fmt(d.switchMax, 1), String(d.switchMs)])))
    console.log()
    console.log(`haproxy RSS: ${fmt((idle?.rss ?? 0) / 1024 / 1024, 1)} MiB idle, ${fmt((busy?.rss ?? 0) / 1024 / 1024, 1)} MiB after the load runs`)
    if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ steady, deploys, haproxyRss: { idle: idle?.rss, afterLoad: busy?.rss } }, null, 2))
  } finally {
    await berth.stop()
    cleanup()
  }
}

main().catch((err) => {
  console.error(err.stack ?? err)
  process.exit(1)
})
