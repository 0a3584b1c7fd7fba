// xterm.js and its fit addon, typed: the page loads them as classic scripts from /assets (their UMD builds set
// globals), so the page bundles stay small and the browser caches the terminal separately.

import type { Terminal as XTerm } from '@xterm/xterm'
import type { FitAddon as XFitAddon } from '@xterm/addon-fit'

interface XtermGlobals {
  Terminal: typeof XTerm
  FitAddon: { FitAddon: typeof XFitAddon }
}

export function xterm(): XtermGlobals {
  return globalThis as unknown as XtermGlobals
}
