// Reads the checksum a client may send with an upload: ?sha256=HEX or an RFC 9530 Content-Digest header.
// Returns lowercase hex or null; contradictory or unusable input is a problem, never silently ignored.

import { problem } from '../errors.js'

export function parseContentDigest(header: string): string {
  const members = new Map<string, string>()
  for (const part of header.split(',')) {
    const m = /^\s*([a-z0-9-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*$/i.exec(part)
    if (!m) throw problem('DIGEST_INVALID', `Content-Digest "${header.slice(0, 120)}" is not a structured-field dictionary like sha-256=:BASE64:.`)
    members.set(m[1]!.toLowerCase(), m[2]!)
  }
  const b64 = members.get('sha-256')
  if (b64 === undefined) {
    throw problem('DIGEST_UNSUPPORTED', `Content-Digest names ${[...members.keys()].join(', ')}; berth checks sha-256 only (sha-256=:BASE64:).`)
  }
  const raw = Buffer.from(b64, 'base64')
  if (raw.length !== 32) throw problem('DIGEST_INVALID', 'The sha-256 member of Content-Digest does not decode to 32 bytes.')
  return raw.toString('hex')
}

export function expectedSha256(query: string | undefined, contentDigest: string | undefined, multipart: boolean): string | null {
  const fromQuery = query ? query.toLowerCase() : null
  if (contentDigest && multipart) {
    throw problem('DIGEST_UNSUPPORTED', 'Content-Digest covers the whole multipart body, not the release file; use ?sha256=HEX with multipart uploads.')
  }
  const fromHeader = contentDigest ? parseContentDigest(contentDigest) : null
  if (fromQuery && fromHeader && fromQuery !== fromHeader) {
    throw problem('DIGEST_INVALID', '?sha256= and Content-Digest disagree; send one of them.')
  }
  return fromQuery ?? fromHeader
}
