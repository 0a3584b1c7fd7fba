// Owns the request-header limits as documented (issue 23, D16): 16 KiB counted as sent and 100 headers.
// Node's own maxHeaderSize counts only names and values, so 2,000 tiny headers in 22.9 KB passed it.

import type { FastifyReply, FastifyRequest } from 'fastify'
import { problem } from '../errors.js'

/** The whole header section as it came over the wire: request line, names, ": ", values, line ends. */
export const MAX_HEADER_BYTES = 16 * 1024
export const MAX_HEADERS = 100
/**
 * What Node keeps of a request's headers (server.maxHeadersCount): one more than allowed, so that a request
 * holding exactly that many is known to have had too many (Node drops the rest without a word).
 */
export const HEADERS_KEPT = MAX_HEADERS + 1

/** A global onRequest hook: runs before authentication, so a refused request costs no token check. */
export function headerLimits(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
  const raw = request.raw.rawHeaders
  if (raw.length / 2 > MAX_HEADERS) {
    reply.header('connection', 'close')
    return done(problem('HEADERS_TOO_LARGE', `The request has more than ${MAX_HEADERS} headers; send at most ${MAX_HEADERS}.`, { limit: MAX_HEADERS }))
  }
  // "GET /url HTTP/1.1\r\n", each "name: value\r\n", the closing "\r\n".
  let size = request.raw.method!.length + request.raw.url!.length + 11 + 2
  for (let i = 0; i < raw.length; i += 2) size += raw[i]!.length + raw[i + 1]!.length + 4
  if (size > MAX_HEADER_BYTES) {
    reply.header('connection', 'close')
    return done(problem('HEADERS_TOO_LARGE', `The request line and headers take ${size} bytes; at most ${MAX_HEADER_BYTES} (16 KiB) are accepted.`, { limit: MAX_HEADER_BYTES }))
  }
  done()
}
