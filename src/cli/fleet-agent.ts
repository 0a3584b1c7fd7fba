// The fleet conductor's Agent (src/fleet/agent.ts) over HTTP: one BerthClient per host, with the token from
// the variable the fleet file names. Failures stay ApiErrors, whose code and detail never hold the token.

import type { Agent, AgentApp, Deployment, UploadedRelease } from '../fleet/agent.js'
import type { FleetHost } from '../fleet/file.js'
import { ApiError, BerthClient, type ClientOptions } from './client.js'
import { appPath } from './commands/common.js'

export class HttpAgent implements Agent {
  readonly #api: BerthClient

  constructor(
    readonly host: FleetHost,
    readonly appName: string,
    token: string,
    opts: ClientOptions = {},
  ) {
    this.#api = new BerthClient(host.url, token, opts)
  }

  async upload(file: string, sha256: string, onProgress: (sent: number, total: number) => void): Promise<UploadedRelease> {
    const up = await this.#api.upload<{ id: string; version: string }>(appPath(this.appName, `/releases?sha256=${sha256}`), file, (p) => onProgress(p.sent, p.total))
    return { id: up.body.id, version: up.body.version, created: up.status === 201 }
  }

  async app(): Promise<AgentApp | null> {
    return this.#orNull(this.#api.request<AgentApp>('GET', appPath(this.appName)), 'APP_NOT_FOUND')
  }

  async release(idOrVersion: string): Promise<{ id: string; version: string } | null> {
    return this.#orNull(this.#api.request<{ id: string; version: string }>('GET', appPath(this.appName, `/releases/${encodeURIComponent(idOrVersion)}`)), 'RELEASE_NOT_FOUND', 'APP_NOT_FOUND')
  }

  async deployments(): Promise<Deployment[]> {
    return (await this.#api.request<{ deployments: Deployment[] }>('GET', appPath(this.appName, '/deployments'))).deployments
  }

  deploy(body: { release: string; migrate: boolean; rollout: string }): Promise<Deployment> {
    return this.#api.request<Deployment>('POST', appPath(this.appName, '/deployments'), body)
  }

  rollback(body: { to?: string; rollout: string }): Promise<Deployment> {
    return this.#api.request<Deployment>('POST', appPath(this.appName, '/rollback'), body)
  }

  stop(): Promise<Deployment> {
    return this.#api.request<Deployment>('POST', appPath(this.appName, '/stop'))
  }

  deployment(id: string): Promise<Deployment> {
    return this.#api.request<Deployment>('GET', appPath(this.appName, `/deployments/${encodeURIComponent(id)}`))
  }

  async #orNull<T>(p: Promise<T>, ...codes: string[]): Promise<T | null> {
    try {
      return await p
    } catch (err) {
      if (err instanceof ApiError && codes.includes(err.code)) return null
      throw err
    }
  }
}
