// The shapes of berth's API as the pages read them: aliases of the types generated from openapi.yaml, so the
// browser code and the routes take them from the same document (the only import of the generated file here).

import type { components, operations } from '../generated/api-types.js'

type Schemas = components['schemas']
export type AppStatus = Schemas['App']
export type NodeStatus = Schemas['NodeStatus']
export type ProxyStatus = Schemas['ProxyStatus']
export type ProxyInstance = Schemas['ProxyInstance']
export type AppEdge = Schemas['AppEdge']
export type EdgePause = Schemas['EdgePause']
export type Limits = Schemas['Limits']
export type Deployment = Schemas['Deployment']
export type Plan = Schemas['Plan']
export type Release = Schemas['Release']
export type Settings = Schemas['Settings']
export type AuditEvent = Schemas['Event']
export type LogLine = Schemas['LogLine']
export type Session = Schemas['Session']
export type Problem = Schemas['Problem']

/** GET /v1/token: the signed-in token's view of itself. */
export type Me = operations['whoami']['responses'][200]['content']['application/json']

/** What the dashboard knows of one app: its status, releases and settings, read together. */
export interface AppData {
  name: string
  status: AppStatus
  releases: Release[]
  settings: Settings
}
