#!/usr/bin/env node
// Summarises a V8 .cpuprofile (from `node dist/bench/intake.js --cpu-prof DIR`): self time per function and
// inclusive time per function, so you can see what the daemon's main thread spent its time on.
//
//   node dist/bench/cpuprofile-top.js FILE.cpuprofile [--top N]
//
// Only the main JS thread is profiled: gunzip (zlib) and fs calls run on the libuv thread pool and show up here
// only as the JS that schedules them; time the main thread waits for them is "(idle)".

import fs from 'node:fs'
import path from 'node:path'

const args = process.argv.slice(2)
const file = args.find((a) => !a.startsWith('--'))
const topIdx = args.indexOf('--top')
const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 25
if (!file) {
  process.stderr.write('usage: node dist/bench/cpuprofile-top.js FILE.cpuprofile [--top N]\n')
  process.exit(2)
}
/** The parts of V8's profile format (what --cpu-prof writes) read here. */
interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile
const byId = new Map(prof.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

const selfUs = new Map<number, number>()
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i]!
  selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0))
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0)

const label = (n: ProfileNode) => {
  const f = n.callFrame
  const where = f.url ? `${path.basename(f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}` : ''
  return `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`
}

const self = new Map<string, number>()
const incl = new Map<string, number>()
for (const [id, us] of selfUs) {
  const n = byId.get(id)!
  self.set(label(n), (self.get(label(n)) ?? 0) + us)
  // Inclusive: count each label once per sample stack.
  const seen = new Set<string>()
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur)!)
    if (seen.has(l)) continue
    seen.add(l)
    incl.set(l, (incl.get(l) ?? 0) + us)
  }
}

const show = (title: string, m: Map<string, number>) => {
  process.stdout.write(`\n${title} (total ${(total / 1e6).toFixed(2)} s sampled)\n`)
  for (const [l, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${(us / 1e6).toFixed(3).padStart(8)} s ${((100 * us) / total).toFixed(1).padStart(5)}%  ${l}\n`)
  }
}
process.stdout.on("error", () => process.exit(0))
show("self time", self)
show('inclusive time', incl)
