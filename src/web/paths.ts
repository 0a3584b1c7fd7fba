// The addresses the pages call: an app's API path and its terminal socket, with the app's name encoded so that
// no name can reach another path. Pure strings; test/web-paths.test.ts runs them in node.

export type TerminalKind = 'remote' | 'attach'

export function appPath(app: string, rest = ''): string {
  return `/v1/apps/${encodeURIComponent(app)}${rest}`
}

/** The terminal socket of an app on the page's own host: wss when the page came over https. */
export function terminalUrl(page: { protocol: string; host: string }, app: string, kind: TerminalKind): string {
  return `${page.protocol === 'https:' ? 'wss://' : 'ws://'}${page.host}${appPath(app, `/${kind}`)}`
}
