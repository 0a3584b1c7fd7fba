// The real browser the page tests drive: Debian's Chromium through playwright-core, launched the one way
// every test needs it (no sandbox as root, nothing fetched in the background).

import fs from 'node:fs'
import type { Browser } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'
export const HAVE_CHROMIUM = fs.existsSync(CHROMIUM)

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core')
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'] })
}
