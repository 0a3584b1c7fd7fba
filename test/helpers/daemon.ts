// Starts a real berth on a real loopback port with a fresh data directory, in-process or as a child
// process, and hands back its URL and an admin token. Every start is paired with a stop that removes it.

import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import { loadConfig, type Config } from '../../src/config.js'
import { startServer, type RunningServer } from '../../src/http/server.js'
import type { Scope } from '../../src/auth/tokens.js'
import { REPO } from './fixtures.js'

export function tempDir(prefix = 'berth-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

export interface TestDaemon {
  url: string
  dataDir: string
  adminToken: string
  server: RunningServer
  config: Config
  token(name: string, scopes: Scope[], apps?: string[]): string
  /** Every log line the daemon wrote, at debug, when started with `{ keepLogs: true }` (else empty). */
  logs(): string
  stop(): Promise<void>
}

/**
 * Ports handed out to what a test starts later (epmd, the fixture app, haproxy) come from below the kernel's
 * ephemeral range (ip_local_port_range starts at 32768): a port probed with listen(0) and released is back in
 * the pool that every other test file's bind(0) and outgoing connections draw from, so a BEAM could find it
 * taken by the time it listens. Each test process claims blocks of its own (a file per block under the temp
 * dir, created exclusively) and never hands out a port twice: an app's PORT is free for a moment at every
 * restart, and another process (or a second lap of the same block) must not give it away then. Blocks chosen
 * by pid alone collide for 1 in 220 pairs of test files running side by side, and a run has ~45 such pairs.
 */
const PORT_BASE = 10_000
const PORTS_PER_PROCESS = 100
const PORT_BLOCKS = 220 // 10000..31999
const CLAIMS = path.join(os.tmpdir(), 'berth-test-port-blocks')
let block = -1
let nextPort = -1

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Claims the next free block from this process's pid on; -1 when all are taken. */
function claimBlock(): number {
  fs.mkdirSync(CLAIMS, { recursive: true })
  for (let i = 0; i < PORT_BLOCKS; i++) {
    const b = (process.pid + i) % PORT_BLOCKS
    const file = path.join(CLAIMS, String(b))
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, String(process.pid), { flag: 'wx' })
        process.once('exit', () => fs.rmSync(file, { force: true }))
        return b
      } catch {
        // Claimed. A claim whose test process is gone (killed) is taken over; renaming it away first means
        // only one of two processes doing so at once wins.
        let owner = 0
        try {
          owner = Number(fs.readFileSync(file, 'utf8'))
        } catch {
          continue
        }
        if (!owner || alive(owner)) break
        try {
          fs.renameSync(file, `${file}.gone-${process.pid}`)
          fs.rmSync(`${file}.gone-${process.pid}`, { force: true })
        } catch {
          break
        }
      }
    }
  }
  return -1
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/** A free TCP port on loopback (for epmd and the fixture app's HTTP server), never one handed out before. */
export async function freePort(): Promise<number> {
  for (;;) {
    if (block < 0 || nextPort >= PORT_BASE + (block + 1) * PORTS_PER_PROCESS) {
      block = claimBlock()
      if (block < 0) break
      nextPort = PORT_BASE + block * PORTS_PER_PROCESS
    }
    const port = nextPort++
    if (await canListen(port)) return port
  }
  // Every block is claimed: any port the kernel gives.
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
    srv.on('error', reject)
  })
}

/**
 * A range of consecutive free ports for BERTH_DIST_PORTS (FIRST-LAST): the distribution ports of the nodes
 * a test daemon runs, from this process's blocks like every other port a test hands out.
 */
export async function freePortRange(n = 8): Promise<string> {
  for (;;) {
    const first = await freePort()
    let next = first
    while (next - first < n - 1 && (await freePort()) === next + 1) next++
    if (next - first === n - 1) return `${first}-${next}`
  }
}

/** Processes whose command line mentions dir: every BEAM, run_erl and epmd a test started runs from its data dir. */
export function processesUnder(dir: string): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      if (fs.readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]?.startsWith('Z')) continue
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ')
      if (cmd.includes(dir)) out.push({ pid: Number(name), cmd })
    } catch {
      // gone meanwhile
    }
  }
  return out
}

export function killProcessesUnder(dir: string): number {
  const procs = processesUnder(dir)
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  return procs.length
}

export async function startDaemon(env: Record<string, string> = {}, opts: { keepLogs?: boolean } = {}): Promise<TestDaemon> {
  const dataDir = env.BERTH_DATA_DIR ?? tempDir()
  // Each daemon gets its own epmd so that test files running side by side never share node names.
  const config = loadConfig({ BERTH_DATA_DIR: dataDir, BERTH_LISTEN: '127.0.0.1:0', BERTH_EPMD_PORT: String(await freePort()), BERTH_DIST_PORTS: await freePortRange(), ...env })
  // keepLogs: the most talkative level, so that a test can check what berth never writes to its log.
  const lines: string[] = []
  const logger = opts.keepLogs ? pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }) : pino({ level: process.env.BERTH_TEST_LOG ?? 'silent' })
  const server = await startServer(config, logger)
  const adminToken = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
  return {
    url: server.url,
    dataDir,
    adminToken,
    server,
    config,
    token: (name, scopes, apps) => server.services.tokens.create({ name, scopes, apps: apps ?? null }).token,
    logs: () => lines.join(''),
    stop: async () => {
      const { supervisor, apps } = server.services
      await supervisor.stopAll((app) => apps.settings(app)).catch(() => {})
      await server.services.proxy.stopAll().catch(() => {})
      await server.close()
      // epmd (started by the first node) is the only process a clean stop leaves; it runs from dataDir too.
      killProcessesUnder(dataDir)
      fs.rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

export interface ChildDaemon {
  url: string
  dataDir: string
  child: ChildProcess
  output(): string
  /** Sends SIGTERM and waits for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Runs `berth serve` as a real child process (for signals, logs and CLI tests). */
export async function spawnDaemon(dataDir: string, env: Record<string, string> = {}): Promise<ChildDaemon> {
  const child = spawn(process.execPath, [path.join(REPO, 'bin', 'berth.js'), 'serve'], {
    env: { ...process.env, BERTH_DATA_DIR: dataDir, BERTH_LISTEN: '127.0.0.1:0', BERTH_LOG_LEVEL: 'info', BERTH_EPMD_PORT: String(await freePort()), BERTH_DIST_PORTS: await freePortRange(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (out += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`berth did not start:\n${out}`)), 15_000)
    const check = () => {
      const m = /"url":"(http[^"]+)"/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1]!)
      }
    }
    child.stdout!.on('data', check)
    child.on('exit', () => reject(new Error(`berth exited early:\n${out}`)))
  })
  return {
    url,
    dataDir,
    child,
    output: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      const code = await exited
      clearTimeout(timer)
      return code
    },
  }
}

/** Runs the berth CLI to completion. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO, 'bin', 'berth.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    // 'close', not 'exit': exit can come before the last of stdout has been read from the pipe, and a test
    // then sees less output than the command wrote (an empty --help under load, in one CI run).
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
