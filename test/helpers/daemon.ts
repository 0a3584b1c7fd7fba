// Starts a real berth on a real loopback port with a fresh data directory, in-process or as a child
// process, and hands back its URL and an admin token. Every start is paired with a stop that removes it.

import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import { loadConfig, type Config } from '../../src/config.js'
import { startServer, type RunningServer } from '../../src/http/server.js'
import type { Scope } from '../../src/auth/tokens.js'
import { REPO } from './fixtures.js'
import { freePort, freePortRange } from './ports.js'

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

export { freePort, freePortRange } from './ports.js'

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

/** Kills every process under dir and waits up to 5 s for them to be gone: what is left (a test asserts none). */
export async function endProcessesUnder(dir: string): Promise<{ pid: number; cmd: string }[]> {
  killProcessesUnder(dir)
  for (let i = 0; i < 50 && processesUnder(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 100))
  return processesUnder(dir)
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

/**
 * A directory a test's app writes to (HELLO_DATA_DIR): with isolation on (the tests run as root) the app runs as
 * a uid of its own, which needs the directory to be writable by it, as an operator's would.
 */
export function appDataDir(dir: string): string {
  fs.mkdirSync(dir, { recursive: true })
  fs.chmodSync(dir, 0o777)
  return dir
}
