// Small HTTP helpers over fetch for tests: JSON in, status + parsed body out.

export interface Answer {
  status: number
  headers: Headers
  body: any
  text: string
}

export async function call(url: string, init: RequestInit & { token?: string } = {}): Promise<Answer> {
  const headers = new Headers(init.headers)
  if (init.token) headers.set('authorization', `Bearer ${init.token}`)
  const res = await fetch(url, { ...init, headers, duplex: 'half' } as RequestInit)
  const text = await res.text()
  let body: any = null
  try {
    body = text ? JSON.parse(text) : null
  } catch {
    body = null
  }
  return { status: res.status, headers: res.headers, body, text }
}

export function upload(base: string, app: string, tarball: Buffer, opts: { token?: string; query?: string; headers?: Record<string, string>; method?: string } = {}): Promise<Answer> {
  return call(`${base}/v1/apps/${app}/releases${opts.query ? `?${opts.query}` : ''}`, {
    method: opts.method ?? 'POST',
    body: tarball as unknown as BodyInit,
    token: opts.token,
    headers: { 'content-type': 'application/octet-stream', ...opts.headers },
  })
}
