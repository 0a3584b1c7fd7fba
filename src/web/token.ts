// Where both pages keep the operator's token: this tab's sessionStorage only, never a URL, cookie or localStorage.
// A console tab opened from the dashboard inherits it (window.open from the same origin copies sessionStorage).

const TOKEN_KEY = 'berth-token'

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY)
}

export function saveToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token)
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY)
}
