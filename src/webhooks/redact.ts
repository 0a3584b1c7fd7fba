// Webhook URLs as everyone but the admin-only webhook API shows them: credentials in the user part, the query
// string, and token-bearing paths (Slack, Discord, Teams...) replaced by `***`, so the audit trail leaks none.

/** Hosts whose webhook URLs carry their secret in the path; the path is hidden whole. */
const TOKEN_PATH_HOSTS = [/^hooks\.slack\.com$/, /^(?:[\w-]+\.)?discord(?:app)?\.com$/, /\.webhook\.office\.com$/, /^outlook\.office(?:365)?\.com$/, /^hooks\.zapier\.com$/, /^maker\.ifttt\.com$/, /^api\.telegram\.org$/, /^chat\.googleapis\.com$/]

/** A path segment that looks like a generated secret (a Mattermost or Gitea hook key): long, letters and digits. */
const SECRETISH = /^(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}$/

export function redactUrl(url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return '***'
  }
  const userinfo = u.username || u.password ? '***@' : ''
  const host = u.hostname.toLowerCase()
  const path = TOKEN_PATH_HOSTS.some((re) => re.test(host))
    ? `/${u.pathname.split('/').filter(Boolean)[0] ?? ''}${u.pathname.split('/').filter(Boolean).length > 1 ? '/***' : ''}`
    : u.pathname
        .split('/')
        .map((s) => (SECRETISH.test(s) ? '***' : s))
        .join('/')
  return `${u.protocol}//${userinfo}${u.host}${path}${u.search ? '?***' : ''}`
}
