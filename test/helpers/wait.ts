// Polling for a condition in tests: one `until` for every test file, bounded in time, naming what it waited
// for (and the last error the check threw) when it gives up.

import assert from 'node:assert/strict'

/**
 * Calls `fn` every `everyMs` until it returns a truthy value, which it returns. A check that throws counts as
 * not yet (a daemon still starting refuses connections); after `ms` the wait fails with the last error.
 */
export async function until<T>(what: string, fn: () => T | Promise<T>, ms = 60_000, everyMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + ms
  let last: unknown = null
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > end) throw new assert.AssertionError({ message: `timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}` })
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
