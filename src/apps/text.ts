// Strings from requests that end up in a command's argv or environment, or in a URL berth fetches: the
// characters they may not hold. Answers never echo the value (it may be a secret, or a terminal attack).

import { problem } from '../errors.js'

/** NUL ends a C string: execve cannot pass one, and Node refuses it with the whole value in its error. */
const NUL = /\0/
/** Control characters and whitespace: a URL with them is not what it looks like (the URL parser drops some). */
const URL_UNSAFE = /[\x00-\x20\x7f]/

/** Refuses a NUL byte in a value that is passed to a command (an expression, an env value). 400. */
export function checkNoNul(value: string, field: string): void {
  if (NUL.test(value)) throw problem('VALIDATION_FAILED', `${field} contains a NUL byte, which no command line or environment can carry; remove it.`, { field })
}

/** Refuses control characters (NUL, newlines, tabs…) and spaces in a URL. 400. */
export function checkUrlChars(value: string, field: string): void {
  if (URL_UNSAFE.test(value)) throw problem('VALIDATION_FAILED', `${field} contains a control character or a space (a NUL, newline or tab); write the URL on one line, with spaces percent-encoded.`, { field })
}

/** Linux refuses any single argument longer than this (MAX_ARG_STRLEN, 32 pages) with E2BIG. */
export const MAX_ARG_BYTES = 128 * 1024 - 1

/** A value passed as one argument of a command: no NUL, and within the kernel's limit for one argument. 400. */
export function checkArgument(value: string, field: string): void {
  checkNoNul(value, field)
  const bytes = Buffer.byteLength(value)
  if (bytes > MAX_ARG_BYTES) throw problem('VALIDATION_FAILED', `${field} is ${bytes} bytes in UTF-8; one command-line argument holds at most ${MAX_ARG_BYTES}.`, { field, size: bytes, limit: MAX_ARG_BYTES })
}
