// The browser pages berth serves (the dashboard at /, the web console at /console/APP) and their files under
// /assets: one Content-Security-Policy and one set of page headers for both, and the fixed map of asset names.

import fs from 'node:fs'
import path from 'node:path'
import type { FastifyReply } from 'fastify'
import { fromRoot } from '../root.js'

/** The pages' HTML and styles, as written (src/web). */
const WEB_DIR = fromRoot('src', 'web')
/** The pages' scripts, bundled from src/web by scripts/build-web.mjs. */
const BUNDLES_DIR = fromRoot('dist', 'web')
const MODULES = fromRoot('node_modules')

/**
 * Both pages: scripts, styles, sockets and API calls from berth itself only, and no framing by other sites.
 * Styles also allow inline, for xterm.js (the console and the recording player): it writes its theme and cell
 * metrics into <style> elements at run time, and styles cannot run code. img-src allows data: for the
 * dashboard's icon, inlined into the page. The pages need nothing else, so they differ in nothing.
 */
export const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const JS = 'text/javascript; charset=utf-8'
const CSS = 'text/css; charset=utf-8'
/** The only files /assets serves: a fixed map, so no client-supplied name ever reaches the filesystem. */
const ASSETS: Record<string, { file: string; type: string }> = {
  'xterm.js': { file: path.join(MODULES, '@xterm/xterm/lib/xterm.js'), type: JS },
  'xterm.css': { file: path.join(MODULES, '@xterm/xterm/css/xterm.css'), type: CSS },
  'addon-fit.js': { file: path.join(MODULES, '@xterm/addon-fit/lib/addon-fit.js'), type: JS },
  'console.js': { file: path.join(BUNDLES_DIR, 'console.js'), type: JS },
  'console.css': { file: path.join(WEB_DIR, 'console.css'), type: CSS },
  'dashboard.js': { file: path.join(BUNDLES_DIR, 'dashboard.js'), type: JS },
  'dashboard.css': { file: path.join(WEB_DIR, 'dashboard.css'), type: CSS },
}

/** The asset of that name, or undefined for any name not in the map. */
export function asset(name: string): { file: string; type: string } | undefined {
  return Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined
}

/** A page's HTML, read per request (a few KiB), so that the daemon keeps nothing of a page it may never serve. */
export function pageHtml(page: 'dashboard' | 'console'): string {
  return fs.readFileSync(path.join(WEB_DIR, `${page}.html`), 'utf8')
}

/** Sends a page with the headers every page has: the CSP, no framing, no referrer, not cached. */
export function sendPage(reply: FastifyReply, html: string): FastifyReply {
  reply.type('text/html; charset=utf-8').header('content-security-policy', PAGE_CSP).header('x-frame-options', 'DENY')
  return reply.header('referrer-policy', 'no-referrer').header('cache-control', 'no-store').send(html)
}
