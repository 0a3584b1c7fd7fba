// The logger: pino JSON to stdout for journald, pretty only when a person is watching a terminal.
// Redaction is a second line of defence; the first is never passing tokens or env values to the logger.

import { createRequire } from 'node:module'
import pino, { type Logger } from 'pino'
import type PinoPretty from 'pino-pretty'
import type { Config } from './config.js'

export const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'env',
  '*.env',
]

export function createLogger(level: Config['logLevel'], destination: NodeJS.WritableStream = process.stdout): Logger {
  const opts = { level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' } }
  if ((destination as NodeJS.WriteStream).isTTY) {
    // Loaded only for a person at a terminal: under systemd it would be ~10 MiB of the daemon for nothing.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty
    return pino(opts, pretty({ destination: destination as NodeJS.WriteStream, colorize: true, sync: true }))
  }
  return pino(opts, destination === process.stdout ? pino.destination({ fd: 1, sync: false }) : (destination as pino.DestinationStream))
}
