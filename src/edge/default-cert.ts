// The certificate the edge shows a client whose SNI names no host berth has a certificate for: self-signed,
// naming no app, so that an unknown name gets berth's 404 page (with -k) and never another app's certificate.

import { randomBytes, webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

/** A PEM of a fresh self-signed certificate then its PKCS#8 key, valid ten years (it proves nothing anyway). */
export async function selfSignedPem(commonName = 'berth-edge-default'): Promise<string> {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto)
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])
  const notBefore = new Date(Date.now() - 3600_000)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${randomBytes(15).toString('hex')}`,
    name: `CN=${commonName}`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + 10 * 365 * 86_400_000),
    keys: keys as unknown as CryptoKeyPair,
    signingAlgorithm: ALG,
  })
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`
  return `${cert.toString('pem')}\n${key}`
}
