// ACME HTTP-01 answers waiting to be fetched: the ACME client puts a token's key authorization here, and
// the edge's fallback server answers /.well-known/acme-challenge/TOKEN from it. In memory only.

/** A token as RFC 8555 makes them: base64url, at least 128 bits (22 characters); the cap keeps keys small. */
const TOKEN = /^[A-Za-z0-9_-]{16,128}$/

export class Challenges {
  private readonly answers = new Map<string, string>()

  set(token: string, keyAuthorization: string): void {
    if (!TOKEN.test(token)) throw new Error('an ACME token must be base64url')
    this.answers.set(token, keyAuthorization)
  }

  delete(token: string): void {
    this.answers.delete(token)
  }

  /** The key authorization for a token, or undefined (the caller answers 404). */
  get(token: string): string | undefined {
    return TOKEN.test(token) ? this.answers.get(token) : undefined
  }
}
