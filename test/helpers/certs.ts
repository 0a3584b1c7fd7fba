// Certificates made with openssl for tests: a private CA and leaf certificates it signs for given hostnames,
// with chosen validity, so that a client can verify the edge with --cacert like a browser would.

import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

export interface TestCa {
  dir: string
  cert: string
  key: string
  pem: Buffer
}

const run = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })

export function makeCa(dir: string, name = 'berth test CA'): TestCa {
  fs.mkdirSync(dir, { recursive: true })
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir)
  return { dir, cert: path.join(dir, 'ca.crt'), key: path.join(dir, 'ca.key'), pem: fs.readFileSync(path.join(dir, 'ca.crt')) }
}

let serial = 1000

/** A leaf for `hosts` signed by the CA: its PEM, its key's PEM, and the two together (chain then key). */
export function makeLeaf(ca: TestCa, hosts: string[], opts: { days?: number; name?: string } = {}): { cert: string; key: string; bundle: string; serial: string } {
  const name = opts.name ?? `${hosts[0]}-${++serial}`
  const d = ca.dir
  const ext = path.join(d, `${name}.ext`)
  fs.writeFileSync(ext, `subjectAltName=${hosts.map((h) => `DNS:${h}`).join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`)
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${hosts[0]}`], d)
  const sn = String(++serial)
  run(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', sn, '-days', String(opts.days ?? 10), '-out', `${name}.crt`, '-extfile', ext], d)
  const cert = fs.readFileSync(path.join(d, `${name}.crt`), 'utf8')
  const key = fs.readFileSync(path.join(d, `${name}.key`), 'utf8')
  return { cert, key, bundle: `${cert.trim()}\n${key.trim()}\n`, serial: Number(sn).toString(16).toUpperCase().padStart(4, '0') }
}
