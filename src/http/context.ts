// What every route module gets: the services, the API document, the auth limiter, and `route()`, which
// registers an operation of openapi.yaml with its handler typed from the same document (generated/api-types.ts).

import type { FastifyInstance, FastifyRequest, onRequestHookHandler, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault, RouteHandlerMethod } from 'fastify'
import type { WebSocket } from 'ws'
import type { Services } from '../services.js'
import type { operations } from '../generated/api-types.js'
import type { FailureLimiter } from './auth.js'
import type { ApiDocument } from './openapi.js'
import type { StreamLimiter } from './streams.js'

export type OperationId = keyof operations

type Op<K extends OperationId> = operations[K]
type PathOf<O> = O extends { parameters: { path: infer P } } ? (P extends undefined ? unknown : P) : unknown
// Fastify always hands a query object (empty when there is none), so optional query parameters are just fields.
type QueryOf<O> = O extends { parameters: { query?: infer Q } } ? NonNullable<Q> : unknown
type BodyOf<O> = O extends { requestBody: { content: { 'application/json': infer B } } }
  ? B
  : O extends { requestBody?: { content: { 'application/json': infer B } } }
    ? B | undefined
    : unknown

/** Params, Querystring and Body of one operation, as Fastify's route generics. */
export interface RouteTypes<K extends OperationId> {
  Params: PathOf<Op<K>>
  Querystring: QueryOf<Op<K>>
  Body: BodyOf<Op<K>>
}

export type Handler<K extends OperationId> = RouteHandlerMethod<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, RouteTypes<K>>
export type SocketHandler<K extends OperationId> = (socket: WebSocket, request: FastifyRequest<RouteTypes<K>>) => void

export interface RouteExtra {
  bodyLimit?: number
  onRequest?: onRequestHookHandler
}

/** Modules a route needs only on its first request, loaded then (app.ts); a failure is a MODULE_LOAD_FAILED problem. */
export interface Loaders {
  docs(): Promise<typeof import('./docs.js')>
  /** Loaded right after berth listens (routes/meta.ts), or by the first /metrics if that comes first. */
  promClient(): Promise<typeof import('prom-client')>
}

export interface RouteContext {
  services: Services
  load: Loaders
  api: ApiDocument
  limiter: FailureLimiter
  /** Slots for long-lived answers (log follows, event streams, consoles), per token, per app and in all. */
  streams: StreamLimiter
  /** Registers the handler for an operation of openapi.yaml, taking method, URL, schemas and scope from it. */
  route<K extends OperationId>(app: FastifyInstance, operationId: K, handler: Handler<K>, extra?: RouteExtra): void
  /** The same for a websocket operation: `onRequest` runs before the upgrade. */
  socketRoute<K extends OperationId>(app: FastifyInstance, operationId: K, handler: SocketHandler<K>, extra: RouteExtra): void
}
