// Loopback ports for what tests and benches start (daemons, epmd, fixture apps, haproxy): the one allocator both
// use, so that a port is handed out once per process and never from the kernel's ephemeral range.

import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

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

/**
 * A free TCP port on loopback (for epmd, the fixture app's HTTP server, a bench's berth), never one handed out
 * before by this process nor one in `avoid`, and never 4369 (epmd's default: a stray system epmd may take it).
 */
export async function freePort(avoid: ReadonlySet<number> = new Set()): Promise<number> {
  for (;;) {
    if (block < 0 || nextPort >= PORT_BASE + (block + 1) * PORTS_PER_PROCESS) {
      block = claimBlock()
      if (block < 0) break
      nextPort = PORT_BASE + block * PORTS_PER_PROCESS
    }
    const port = nextPort++
    if (!avoid.has(port) && port !== 4369 && (await canListen(port))) return port
  }
  // Every block is claimed: any port the kernel gives.
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer()
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as net.AddressInfo
        srv.close(() => resolve(port))
      })
      srv.on('error', reject)
    })
    if (!avoid.has(port) && port !== 4369) return port
  }
}

/** n distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const got = new Set<number>()
  while (got.size < n) got.add(await freePort(got))
  return [...got]
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

/** Whether something accepts connections on a loopback port. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.destroy()
      resolve(true)
    })
    sock.once('error', () => resolve(false))
  })
}
