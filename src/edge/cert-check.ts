// What makes a PEM bundle servable for a hostname: it parses, its key matches its leaf, every certificate of
// the chain is valid now, the leaf covers the hostname (RFC 6125), and nothing in it is outside that chain.
// Only node:crypto does the cryptography; this module orders, compares and explains.

import crypto, { X509Certificate, type KeyObject } from 'node:crypto'
import { problem } from '../errors.js'

/** More certificates than any real chain has (leaf, two intermediates, a cross-sign, a root). */
export const MAX_CHAIN = 8
/** RSA keys below this are refused by browsers and by Let's Encrypt alike. */
const MIN_RSA_BITS = 2048

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** A bundle that passed every check: the chain leaf first, as haproxy wants it, and what lists show. */
export interface CheckedBundle {
  chain: X509Certificate[]
  key: KeyObject
  /** Chain then key, normalized (no text around the blocks, the key as PKCS#8): the file the edge loads. */
  pem: string
  facts: CertFacts
}

/** The leaf as lists, events and metrics show it; never key material. */
export interface CertFacts {
  notBefore: string
  notAfter: string
  issuer: string
  subject: string
  sans: string[]
  serial: string
  fingerprint: string
}

const invalid = (field: 'cert' | 'key', detail: string) => problem('CERT_INVALID', detail, { field })

/** The certificates of a PEM text, in the order given. */
export function parseCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? []
  if (blocks.length === 0) throw invalid('cert', 'The cert field holds no PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----).')
  if (blocks.length > MAX_CHAIN) throw invalid('cert', `The cert field holds ${blocks.length} certificates; a chain has at most ${MAX_CHAIN}.`)
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b)
    } catch (err) {
      throw invalid('cert', `Certificate ${i + 1} of the cert field is not a readable X.509 certificate (${(err as Error).message}).`)
    }
  })
}

function parseKey(pem: string): KeyObject {
  if (/ENCRYPTED/.test(pem)) throw invalid('key', 'The key is encrypted; send it decrypted (openssl pkey -in KEY -out PLAIN): the edge loads it without a passphrase.')
  let key: KeyObject
  try {
    key = crypto.createPrivateKey({ key: pem, format: 'pem' })
  } catch (err) {
    throw invalid('key', `The key field is not a readable PEM private key (${(err as Error).message}).`)
  }
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ec') throw invalid('key', `The key is ${key.asymmetricKeyType}; the edge serves RSA and ECDSA certificates.`)
  const bits = key.asymmetricKeyDetails?.modulusLength
  if (key.asymmetricKeyType === 'rsa' && bits !== undefined && bits < MIN_RSA_BITS) throw invalid('key', `The RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are needed.`)
  return key
}

/** The leaf (the certificate the key belongs to) first, then each issuer in turn; a stray certificate is refused. */
function orderChain(certs: X509Certificate[], key: KeyObject): X509Certificate[] {
  const leaf = certs.find((c) => c.checkPrivateKey(key))
  if (!leaf) {
    throw problem('CERT_KEY_MISMATCH', certs.length === 1 ? 'The key does not belong to the certificate: send the key the certificate was issued for.' : `The key belongs to none of the ${certs.length} certificates of the bundle: send the key the leaf certificate was issued for.`)
  }
  const chain = [leaf]
  const rest = certs.filter((c) => c !== leaf)
  for (;;) {
    const last = chain.at(-1)!
    if (last.checkIssued(last)) break
    const i = rest.findIndex((c) => last.checkIssued(c) && last.verify(c.publicKey))
    if (i < 0) break
    chain.push(rest.splice(i, 1)[0]!)
  }
  if (rest.length > 0) {
    throw problem('CERT_CHAIN_INVALID', `The bundle holds ${rest.length} certificate(s) that do not issue the chain of the leaf (first: subject "${oneLine(rest[0]!.subject)}"); send the leaf and its intermediates only.`)
  }
  return chain
}

function oneLine(dn: string): string {
  return dn.split('\n').join(', ').slice(0, 200)
}

/** The DNS names of the subjectAltName extension. */
function dnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('DNS:'))
    .map((n) => n.slice(4))
}

export function factsOf(leaf: X509Certificate): CertFacts {
  return {
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
    issuer: oneLine(leaf.issuer),
    subject: oneLine(leaf.subject),
    sans: dnsNames(leaf),
    serial: leaf.serialNumber,
    fingerprint: leaf.fingerprint256,
  }
}

/**
 * Checks a certificate bundle and key for `host` at `now`, and answers the normalized file content. The
 * chain may come in any order (the leaf is the certificate the key belongs to); the file has the leaf first.
 */
export function checkBundle(certPem: string, keyPem: string, host: string, now: number): CheckedBundle {
  const key = parseKey(keyPem)
  const chain = orderChain(parseCertificates(certPem), key)
  for (const [i, c] of chain.entries()) {
    const from = Date.parse(c.validFrom)
    const to = Date.parse(c.validTo)
    const which = i === 0 ? 'The certificate' : `Intermediate "${oneLine(c.subject)}"`
    if (now > to) throw problem('CERT_EXPIRED', `${which} expired at ${new Date(to).toISOString()}; send a current one.`, { notAfter: new Date(to).toISOString() })
    if (now < from) throw problem('CERT_EXPIRED', `${which} is not valid before ${new Date(from).toISOString()}; send it once it is, or check the issuer's clock.`, { notBefore: new Date(from).toISOString() })
  }
  const leaf = chain[0]!
  // RFC 6125: the DNS names of subjectAltName only (browsers ignore the subject's CN), a wildcard only as the
  // whole left-most label, covering exactly one label.
  if (!leaf.checkHost(host, { subject: 'never', wildcards: true, partialWildcards: false, multiLabelWildcards: false })) {
    const names = dnsNames(leaf)
    throw problem('CERT_HOST_MISMATCH', `The certificate does not cover ${host}: its DNS names are ${names.length ? names.join(', ') : 'none (a certificate names its hosts in subjectAltName)'}.`, { host, names })
  }
  const keyPemOut = key.export({ type: 'pkcs8', format: 'pem' }) as string
  const pem = `${chain.map((c) => c.toString().trim()).join('\n')}\n${keyPemOut.trim()}\n`
  return { chain, key, pem, facts: factsOf(leaf) }
}
