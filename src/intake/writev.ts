// Writing a list of buffers whole with writev, which may write fewer bytes than asked: what the unpacker's
// batched file writes (async and sync) share.

import type fs from 'node:fs/promises'

/** Writes every byte of `buffers` at the file's position: writev may write less than asked. */
export async function writeAll(fh: fs.FileHandle, buffers: Buffer[]): Promise<void> {
  while (buffers.length > 0) dropWritten(buffers, (await fh.writev(buffers)).bytesWritten)
}

/** Removes the first `n` bytes a writev took from `buffers`, so that the next one writes the rest. */
export function dropWritten(buffers: Buffer[], n: number): void {
  while (buffers.length > 0 && n >= buffers[0]!.length) n -= buffers.shift()!.length
  if (n > 0) buffers[0] = buffers[0]!.subarray(n)
}
