// Which private loopback port each instance slot listens on (its PORT): from the configured range
// (BERTH_INSTANCE_PORTS), recorded in berth.db, never given to two slots, and checked free on that very port.

import crypto from 'node:crypto'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import type { Slot } from '../paths.js'
import { canListen } from '../process/listen.js'
import type { InstanceRows } from './rows.js'

export interface PortRange {
  first: number
  last: number
}

export class InstancePorts {
  /** Where a first search starts, per data directory: two agents on one default range rarely try one port at once. */
  private readonly offset: number
  /** Claims in flight: two deploys asking at once must not both be given the port neither has recorded yet. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly rows: InstanceRows,
    private readonly range: PortRange,
    private readonly log: Logger,
    seed: string,
    /** The bind check; a test hands in its own. */
    private readonly free: (port: number) => Promise<boolean> = canListen,
  ) {
    this.offset = crypto.createHash('sha256').update(seed).digest().readUInt32BE(0) % (range.last - range.first + 1)
  }

  /** The port recorded for the slot, or null before its first instance. */
  portOf(app: string, slot: Slot): number | null {
    return this.rows.ports().find((p) => p.app === app && p.slot === slot)?.port ?? null
  }

  /**
   * The port for a new instance in `slot`: the slot's own when it is in the range and free, else the next port
   * of the range that no slot has and that binds. Recorded before it is answered, so no other slot gets it.
   */
  claim(app: string, slot: Slot): Promise<number> {
    const run = this.queue.then(() => this.claimNow(app, slot))
    this.queue = run.catch(() => undefined)
    return run
  }

  private async claimNow(app: string, slot: Slot): Promise<number> {
    const all = this.rows.ports()
    const mine = all.find((p) => p.app === app && p.slot === slot)?.port
    if (mine !== undefined && this.inRange(mine) && (await this.free(mine))) return mine
    const taken = new Set(all.filter((p) => !(p.app === app && p.slot === slot)).map((p) => p.port))
    const size = this.range.last - this.range.first + 1
    for (let i = 0; i < size; i++) {
      const port = this.range.first + ((this.offset + i) % size)
      if (port === mine || taken.has(port) || !(await this.free(port))) continue
      if (mine !== undefined) this.log.warn({ app, slot, was: mine, port }, "the instance slot's port is in use (or outside BERTH_INSTANCE_PORTS): the new instance gets another")
      this.rows.savePort(app, slot, port)
      return port
    }
    throw problem('INSTANCE_PORTS_EXHAUSTED', `No port of BERTH_INSTANCE_PORTS (${this.range.first}-${this.range.last}) is free for an instance of "${app}" (slot ${slot}): each slot of each proxied app needs one. Widen the range, or free a port in it.`, { range: `${this.range.first}-${this.range.last}` })
  }

  /** An instance found running on `port` (re-adopted without a record): the port is its slot's from now. */
  adopt(app: string, slot: Slot, port: number): void {
    this.rows.savePort(app, slot, port, true)
  }

  private inRange(port: number): boolean {
    return port >= this.range.first && port <= this.range.last
  }
}
