// Owns the pace an upload body must keep (issue 23, D4): a byte now and then resets an idle timer, so an
// upload is also ended when its last window brought less than the minimum rate, or when it passes its deadline.

import type { Limits } from '../config.js'
import { problem, type BerthError } from '../errors.js'

type PaceLimits = Pick<Limits, 'uploadMinBytesPerSec' | 'uploadRateWindowMs' | 'uploadDeadlineMs'>

/**
 * Bytes per slice of the window: the rate is averaged over the last `uploadRateWindowMs`, checked once that
 * much time has passed since the upload started (its grace period: TCP slow start, a CI runner warming up).
 */
const SLICES = 10

export class UploadPace {
  private readonly slices = new Array<number>(SLICES).fill(0)
  private readonly sliceMs: number
  private slice = 0
  private timer: NodeJS.Timeout | null = null
  private deadline: NodeJS.Timeout | null = null

  constructor(
    private readonly limits: PaceLimits,
    private readonly stop: (err: BerthError) => void,
    started = Date.now(),
  ) {
    this.sliceMs = Math.max(10, Math.floor(limits.uploadRateWindowMs / SLICES))
    if (limits.uploadMinBytesPerSec > 0) {
      this.timer = setInterval(() => this.tick(), this.sliceMs)
      this.timer.unref()
    }
    this.deadline = setTimeout(() => {
      this.end()
      stop(problem('UPLOAD_TIMEOUT', `The upload did not finish within ${limits.uploadDeadlineMs} ms (BERTH_UPLOAD_DEADLINE_MS) and was abandoned; upload again over a faster link.`, { limit: limits.uploadDeadlineMs }))
    }, Math.max(0, started + limits.uploadDeadlineMs - Date.now()))
    this.deadline.unref()
  }

  add(bytes: number): void {
    this.slices[this.slice % SLICES]! += bytes
  }

  end(): void {
    if (this.timer) clearInterval(this.timer)
    if (this.deadline) clearTimeout(this.deadline)
    this.timer = null
    this.deadline = null
  }

  private tick(): void {
    const min = this.limits.uploadMinBytesPerSec
    this.slice++
    if (this.slice >= SLICES) {
      // The slice just begun is the oldest of the window; what the other SLICES-1 brought is the window's.
      let got = 0
      for (let i = 1; i < SLICES; i++) got += this.slices[(this.slice + i) % SLICES]!
      const spanMs = (SLICES - 1) * this.sliceMs
      const rate = (got * 1000) / spanMs
      if (rate < min) {
        this.end()
        return this.stop(problem('UPLOAD_TOO_SLOW', `The upload brought ${Math.round(rate)} bytes/s over the last ${Math.round(spanMs / 1000)} s, below the minimum of ${min} (BERTH_UPLOAD_MIN_BYTES_PER_SEC), and was abandoned; upload again over a faster link.`, { limit: min }))
      }
    }
    this.slices[this.slice % SLICES] = 0
  }
}
