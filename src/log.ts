// The logger: pino JSON to stdout for journald, pretty only when a person is watching a terminal.
// Redaction is a second line of defence; the first is never passing tokens or env values to the logger.

import pino, { type Logger } from 'pino'
import pretty from 'pino-pretty'
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
    return pino(opts, pretty({ destination: destination as NodeJS.WriteStream, colorize: true, sync: true }))
  }
  return pino(opts, destination === process.stdout ? pino.destination({ fd: 1, sync: false }) : (destination as pino.DestinationStream))
}
