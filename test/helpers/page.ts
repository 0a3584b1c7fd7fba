// A dashboard tab in the real browser, for page tests: its own context (its own sessionStorage) whose pages
// record script errors, failed answers and any request that would leave berth's origin (none may), and sign-in.

import assert from 'node:assert/strict'
import type { Browser, BrowserContext, Page } from 'playwright-core'

export interface Tab {
  context: BrowserContext
  page: Page
  errors: string[]
  external: string[]
  /** Closes the context and fails when a page error, an unexpected error answer or an off-origin request happened. */
  close(): Promise<void>
}

/** `expected` names error statuses the test provokes on purpose (e.g. 400 for a refused setting). */
export async function openTab(browser: Browser, url: string, opts: { width?: number; height?: number; expected?: number[] } = {}): Promise<Tab> {
  const context = await browser.newContext({ viewport: { width: opts.width ?? 1280, height: opts.height ?? 900 } })
  const origin = new URL(url).origin
  const errors: string[] = []
  const external: string[] = []
  await context.route('**/*', (route) => {
    const u = route.request().url()
    if (new URL(u).origin === origin) return route.continue()
    external.push(u)
    return route.abort()
  })
  const expected = new Set([401, ...(opts.expected ?? [])])
  const watch = (page: Page) => {
    page.on('pageerror', (e) => errors.push(String(e)))
    page.on('console', (m) => m.type() === 'error' && !/^Failed to load resource: the server responded/.test(m.text()) && errors.push(m.text()))
    page.on('response', (r) => r.status() >= 400 && !expected.has(r.status()) && errors.push(`${r.status()} ${r.request().method()} ${r.url()}`))
  }
  context.on('page', watch)
  const page = await context.newPage()
  await page.goto(`${url}/`)
  return {
    context,
    page,
    errors,
    external,
    close: async () => {
      await context.close()
      assert.deepEqual(errors, [], 'no page error')
      assert.deepEqual(external, [], 'no request leaves the origin')
    },
  }
}

export async function signIn(page: Page, token: string): Promise<void> {
  await page.fill('#token', token)
  await page.click('#signin-go')
  await page.waitForSelector('#me:not([hidden])', { timeout: 10_000 })
}
