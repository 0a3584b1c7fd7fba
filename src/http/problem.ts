// Turns every error that reaches Fastify into an RFC 9457 problem with a code from the catalogue.
// 4xx say exactly what was wrong; 5xx never leak internals (they are logged with the request id instead).

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { BerthError, isBerthError, problem } from '../errors.js'

export function toProblem(err: unknown): BerthError {
  if (isBerthError(err)) return err
  const e = err as FastifyError
  if (e?.validation) {
    return problem('VALIDATION_FAILED', `The request is not valid: ${e.validationContext ?? 'request'} ${e.message.replace(/^[a-z]+\/?/, '').trim()}.`)
  }
  switch (e?.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem('UNSUPPORTED_MEDIA_TYPE', `Content type "${String(e.message).slice(0, 80)}" is not accepted here; send application/json.`)
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return problem('VALIDATION_FAILED', 'The request body is not valid JSON.')
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem('VALIDATION_FAILED', 'The JSON body is too large.')
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
    case 'FST_MULTIPART_INVALID_CONTENT_TYPE':
      return problem('UNSUPPORTED_MEDIA_TYPE', 'The multipart body is malformed (missing boundary?).')
  }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return problem('VALIDATION_FAILED', `The request is not valid: ${e.message}`)
  }
  return problem('INTERNAL', 'berth failed to handle the request; the error is in its log under this request id.')
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, err: BerthError): FastifyReply {
  const retryAfter = err.extra.retryAfter
  if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter))
  if (err.status === 401) reply.header('www-authenticate', 'Bearer realm="berth"')
  return reply
    .code(err.status)
    .type('application/problem+json')
    .serializer(JSON.stringify)
    .send({
      type: `urn:berth:error:${err.code}`,
      title: err.title,
      status: err.status,
      code: err.code,
      detail: err.message,
      instance: request.id,
      ...err.extra,
    })
}

export function errorHandler(this: unknown, err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const p = toProblem(err)
  if (p.status >= 500 && p.code === 'INTERNAL') request.log.error({ err }, 'request failed')
  return sendProblem(request, reply, p)
}

/** Fastify's not-found handler: a request for no route gets ROUTE_NOT_FOUND, in berth's app and the /docs one alike. */
export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendProblem(request, reply, problem('ROUTE_NOT_FOUND', `There is no route ${request.method} ${request.url.split('?')[0]}; see /openapi.yaml.`))
}
