// The part of autocannon 9's API the benches use (the package ships no types): one run, its summary, and
// the per-response event for latency during a deploy.

declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  interface Options {
    url: string
    connections?: number
    duration?: number
    pipelining?: number
    headers?: Record<string, string>
  }

  interface Result {
    requests: { average: number; total: number }
    latency: { p50: number; p99: number }
    errors: number
    timeouts: number
    non2xx: number
  }

  interface Instance extends EventEmitter {
    on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): this
  }

  function autocannon(opts: Options, done: (err: Error | null, result: Result) => void): Instance
  export default autocannon
  export type { Options, Result, Instance }
}
