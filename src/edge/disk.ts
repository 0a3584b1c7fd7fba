// The edge's files in DATA/edge: the apps it routes and their pauses (apps.json), the rendered config and
// map files haproxy reads at each (re)start and reload, the crt-list, and the master's pid record.

import fs from 'node:fs'
import path from 'node:path'
import { replaceFileSync } from '../fsutil.js'
import type { Paths } from '../paths.js'
import { isSameProcess } from '../process/proc.js'
import { renderEdgeConfig, renderMaps, type EdgeApp, type EdgeConfigInput, type EdgeFiles } from './config.js'
import { isHaproxy } from '../proxy/haproxy-proc.js'
import type { MasterRecord } from './process.js'

/** What edge/apps.json keeps: the apps on the edge and the paused ones (Retry-After seconds). */
export interface EdgeState {
  apps: Map<string, EdgeApp>
  paused: Map<string, number>
  /** Hosts the edge serves a certificate for. */
  certified: Set<string>
}

export class EdgeDisk {
  readonly files: EdgeFiles

  constructor(private readonly paths: Paths) {
    const dir = paths.edge
    this.files = {
      runtimeSocket: path.join(dir, 'runtime.sock'),
      fallbackSocket: path.join(dir, 'fallback.sock'),
      crtList: path.join(dir, 'certs.list'),
      hostsMap: path.join(dir, 'hosts.map'),
      redirectMap: path.join(dir, 'redirect.map'),
      hstsMap: path.join(dir, 'hsts.map'),
      pausedMap: path.join(dir, 'paused.map'),
    }
  }

  get config(): string {
    return path.join(this.paths.edge, 'haproxy.cfg')
  }

  private get stateFile(): string {
    return path.join(this.paths.edge, 'state.json')
  }

  private get appsFile(): string {
    return path.join(this.paths.edge, 'apps.json')
  }

  /** The state a restarted berth finds; empty before the first app joined the edge. */
  read(): EdgeState {
    const state: EdgeState = { apps: new Map(), paused: new Map(), certified: this.listedHosts() }
    try {
      const s = JSON.parse(fs.readFileSync(this.appsFile, 'utf8')) as { apps?: Record<string, EdgeApp>; paused?: Record<string, number> }
      state.apps = new Map(Object.entries(s.apps ?? {}))
      state.paused = new Map(Object.entries(s.paused ?? {}))
    } catch {
      // no edge yet: nothing routed
    }
    return state
  }

  /** Writes the maps, apps.json and the config; answers whether the config changed. */
  write(state: EdgeState, render: Omit<EdgeConfigInput, 'files' | 'apps'>): boolean {
    const maps = renderMaps(state.apps, state.paused, state.certified, !!render.https)
    replaceFileSync(this.files.hostsMap, maps.hosts, 0o600)
    replaceFileSync(this.files.redirectMap, maps.redirect, 0o600)
    replaceFileSync(this.files.hstsMap, maps.hsts, 0o600)
    replaceFileSync(this.files.pausedMap, maps.paused, 0o600)
    replaceFileSync(this.appsFile, JSON.stringify({ apps: Object.fromEntries(state.apps), paused: Object.fromEntries(state.paused) }, null, 2), 0o600)
    const text = renderEdgeConfig({ ...render, files: this.files, apps: state.apps })
    const old = fs.existsSync(this.config) ? fs.readFileSync(this.config, 'utf8') : null
    if (old === text) return false
    replaceFileSync(this.config, text, 0o600)
    return true
  }

  /** The files a reload reads, to put back when haproxy refuses the new ones. */
  snapshot(): () => void {
    const saved = [this.config, this.files.hostsMap, this.files.redirectMap, this.files.hstsMap, this.files.pausedMap, this.appsFile].map((f) => [f, fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : null] as const)
    return () => {
      for (const [file, text] of saved) if (text !== null) replaceFileSync(file, text, 0o600)
    }
  }

  crtListed(): string[] {
    return fs.readFileSync(this.files.crtList, 'utf8').split('\n').filter(Boolean)
  }

  writeCrtList(lines: string[]): void {
    replaceFileSync(this.files.crtList, `${lines.join('\n')}\n`, 0o600)
  }

  /** The hosts of the certificates in the crt-list (each DATA/edge/certs/HOST.pem), the default excluded. */
  private listedHosts(): Set<string> {
    try {
      return new Set(this.crtListed().filter((l) => path.dirname(l) === this.paths.edgeCerts && l.endsWith('.pem')).map((l) => path.basename(l, '.pem')))
    } catch {
      return new Set()
    }
  }

  /** The master's pid record; one whose pid now runs something other than haproxy is marked not ours. */
  readRecord(haproxy: string): MasterRecord | null {
    try {
      const r = JSON.parse(fs.readFileSync(this.stateFile, 'utf8')) as MasterRecord
      if (isSameProcess(r.pid, r.startTicks) && !isHaproxy(r.pid, haproxy)) r.startTicks = -1
      return r
    } catch {
      return null
    }
  }

  writeRecord(r: MasterRecord): void {
    replaceFileSync(this.stateFile, JSON.stringify(r), 0o600)
  }

  removeRecord(): void {
    fs.rmSync(this.stateFile, { force: true })
  }
}
