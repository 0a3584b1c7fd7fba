// The data directory's layout, in one place: every path berth writes to is derived here from the data dir.
// App names and release ids are validated before they reach these functions, so joins cannot escape.

import path from 'node:path'
import { problem } from './errors.js'

/**
 * Lower case letters, digits, `_` and single hyphens inside (`shop-staging`): valid as an Erlang node name's
 * head as it is, and never containing the "--" that joins an app to its instance slot (distribution.ts).
 */
export const APP_NAME = /^(?=.{1,64}$)[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*$/
/** A release id is VERSION-12HEX; versions are restricted to characters that are safe in paths and URLs. */
export const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/
export const RELEASE_ID = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}-[0-9a-f]{12}$/
/** A fleet rollout's id (openapi.yaml RolloutId): a short token, safe in logs, URLs and file names. */
export const ROLLOUT_ID = /^[A-Za-z0-9._-]{1,64}$/

export class Paths {
  constructor(readonly dataDir: string) {}

  get db(): string { return path.join(this.dataDir, 'berth.db') }
  get uploads(): string { return path.join(this.dataDir, 'uploads') }
  get apps(): string { return path.join(this.dataDir, 'apps') }
  get initialAdminToken(): string { return path.join(this.dataDir, 'initial-admin-token') }
  /** Records of the one-shot commands (eval, rpc, ...) running now; see process/ledger.ts. */
  get run(): string { return path.join(this.dataDir, 'run') }

  /** The shared edge (one haproxy for every app with proxy.hosts): config, maps, sockets, pid record. */
  get edge(): string { return path.join(this.dataDir, 'edge') }
  /** Certificates the edge serves, one PEM (chain then key) per host, mode 0600; see edge/certs.ts. */
  get edgeCerts(): string { return path.join(this.edge, 'certs') }
  /** The ACME account (its key, mode 0600) and issuance state. */
  get acme(): string { return path.join(this.edge, 'acme') }

  app(app: string): string { return path.join(this.apps, checkApp(app)) }
  releases(app: string): string { return path.join(this.app(app), 'releases') }
  release(app: string, id: string): string {
    if (!RELEASE_ID.test(id)) throw problem('INVALID_RELEASE_ID', `"${id.slice(0, 80)}" is not a release id (VERSION-HEX12, e.g. 0.2.0-3f2a9c1be4d0).`)
    return path.join(this.releases(app), id)
  }
  current(app: string): string { return path.join(this.app(app), 'current') }
  /** Releases that deployed successfully, kept outside the database (see deploy/history.ts). */
  deployed(app: string): string { return path.join(this.app(app), 'deployed.json') }
  /** The app's settings (never its environment), kept outside the database too (see apps/settings-file.ts). */
  settingsFile(app: string): string { return path.join(this.app(app), 'settings.json') }
  shared(app: string): string { return path.join(this.app(app), 'shared') }
  log(app: string): string { return path.join(this.app(app), 'log') }
  /** With the proxy on: one node instance's own pipe and RELEASE_TMP (its console log is under log/SLOT). */
  instance(app: string, slot: string): string { return path.join(this.app(app), 'instances', checkSlot(slot)) }
  /** The app's proxy (haproxy): its config, runtime socket and pid record. */
  proxy(app: string): string { return path.join(this.app(app), 'proxy') }
}

/** The two places an instance of a proxied app runs in (blue/green): at most two instances at once. */
export const SLOTS = ['a', 'b'] as const
export type Slot = (typeof SLOTS)[number]

function checkSlot(slot: string): string {
  if (!(SLOTS as readonly string[]).includes(slot)) throw problem('INTERNAL', `"${slot.slice(0, 20)}" is not an instance slot`)
  return slot
}

function checkApp(app: string): string {
  if (!APP_NAME.test(app)) throw problem('INVALID_APP_NAME', `App name "${app.slice(0, 80)}" must match ${APP_NAME.source}.`)
  return app
}
