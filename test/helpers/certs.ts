// Real certificates for tests, made by the openssl CLI: a CA, and leaves or intermediates it signs with any
// validity window (`openssl ca -startdate/-enddate`, as openssl 3.0's `req -x509` has no start date).

import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import type { CertificateSink } from '../../src/edge/types.js'

export interface TestCa {
  dir: string
  certFile: string
  keyFile: string
  pem: string
}

export interface Issued {
  cert: string
  key: string
  certFile: string
  keyFile: string
}

let seq = 0

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

/** An openssl date: YYYYMMDDHHMMSSZ. */
export function opensslDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z')
}

function newKey(dir: string, name: string, rsaBits?: number): string {
  const file = path.join(dir, `${name}.key`)
  const args = rsaBits ? ['-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${rsaBits}`] : ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']
  openssl(['genpkey', ...args, '-out', file], dir)
  return file
}

/** A self-signed root CA in its own directory under `parent`. */
export function makeCa(parent: string, name = 'berth test CA'): TestCa {
  const dir = path.join(parent, `ca-${++seq}`)
  fs.mkdirSync(path.join(dir, 'new'), { recursive: true })
  const keyFile = newKey(dir, 'ca')
  const certFile = path.join(dir, 'ca.pem')
  openssl(['req', '-x509', '-new', '-key', keyFile, '-out', certFile, '-days', '3650', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir)
  return { dir, certFile, keyFile, pem: fs.readFileSync(certFile, 'utf8') }
}

/**
 * A certificate signed by `ca`: a leaf for `names` (DNS) and `ips`, or with `intermediate` a CA that can sign
 * leaves itself. `start`/`end` in ms (default: from an hour ago for 30 days).
 */
export function issue(ca: TestCa, opts: { names?: string[]; ips?: string[]; cn?: string; start?: number; end?: number; rsaBits?: number; intermediate?: boolean }): Issued & { asCa(): TestCa } {
  const dir = ca.dir
  const n = `c${++seq}`
  const keyFile = newKey(dir, n, opts.rsaBits)
  const csr = path.join(dir, `${n}.csr`)
  const cn = opts.cn ?? opts.names?.[0] ?? n
  openssl(['req', '-new', '-key', keyFile, '-out', csr, '-subj', `/CN=${cn}`], dir)
  const conf = path.join(dir, 'ca.cnf')
  if (!fs.existsSync(conf)) {
    fs.writeFileSync(path.join(dir, 'index.txt'), '')
    fs.writeFileSync(path.join(dir, 'serial'), '1000\n')
    fs.writeFileSync(
      conf,
      `[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = ${dir}/index.txt\nnew_certs_dir = ${dir}/new\nserial = ${dir}/serial\n` +
        `private_key = ${ca.keyFile}\ncertificate = ${ca.certFile}\ndefault_md = sha256\npolicy = p\nunique_subject = no\ncopy_extensions = none\n[ p ]\ncommonName = supplied\n`,
    )
  }
  const ext = path.join(dir, `${n}.ext`)
  const sans = [...(opts.names ?? []).map((d) => `DNS:${d}`), ...(opts.ips ?? []).map((i) => `IP:${i}`)]
  const lines = opts.intermediate ? ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'] : ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth']
  if (sans.length) lines.push(`subjectAltName=${sans.join(',')}`)
  fs.writeFileSync(ext, `${lines.join('\n')}\n`)
  const certFile = path.join(dir, `${n}.pem`)
  const start = opts.start ?? Date.now() - 3600_000
  const end = opts.end ?? Date.now() + 30 * 86_400_000
  openssl(['ca', '-batch', '-notext', '-config', conf, '-in', csr, '-out', certFile, '-extfile', ext, '-startdate', opensslDate(start), '-enddate', opensslDate(end)], dir)
  const cert = fs.readFileSync(certFile, 'utf8')
  const issued = { cert, key: fs.readFileSync(keyFile, 'utf8'), certFile, keyFile }
  return {
    ...issued,
    asCa: () => {
      const sub = path.join(dir, `sub-${n}`)
      fs.mkdirSync(path.join(sub, 'new'), { recursive: true })
      return { dir: sub, certFile, keyFile, pem: cert }
    },
  }
}

/** The edge as certificates see it, recording each call; `fail` makes the next install throw. */
export class RecordingSink implements CertificateSink {
  calls: string[] = []
  fail = false
  async install(host: string, pemFile: string): Promise<void> {
    if (this.fail) throw new Error('the edge refused the certificate')
    this.calls.push(`install ${host} ${fs.readFileSync(pemFile, 'utf8').length > 0 ? 'file' : 'empty'}`)
  }
  async remove(host: string): Promise<void> {
    this.calls.push(`remove ${host}`)
  }
}
