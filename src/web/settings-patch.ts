// How the settings form reads and writes values, without the DOM: a setting shown in a text field and read
// back, and the partial PUT body of what changed. test/web-settings.test.ts runs these in node.

export type Values = Record<string, unknown>

/** One field of the form, as the patch sees it: where its value goes, what it showed, and how to read it now. */
export interface FieldValue {
  path: string[]
  read: () => unknown
  value: unknown
  /** The proxy's on/off switch, which decides whether the proxy fields are sent at all. */
  proxySwitch?: true
}

/** A text field's content: empty is null, "" (two quotes) the empty string, other non-strings as JSON. */
export function shownText(value: unknown, kind: 'text' | null): string {
  if (value === null) return ''
  if (kind === 'text' || typeof value === 'string') return value === '' ? '""' : String(value)
  return JSON.stringify(value)
}

/** A text field read back: the inverse of shownText; a setting of unknown type is JSON when it parses. */
export function readText(text: string, kind: 'text' | null, shown: unknown): unknown {
  if (text === '') return null
  if (text === '""') return ''
  if (kind === 'text' || typeof shown === 'string') return text
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** proxy.hosts in one text field: names separated by commas and/or spaces; berth lower-cases and checks each. */
export function hostsText(hosts: unknown): string {
  return Array.isArray(hosts) ? hosts.join(', ') : ''
}

export function readHosts(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean)
}

/** A select whose empty option is berth's default (null): '' is null, 'true'/'false' booleans, others as given. */
export function choiceValue(v: unknown): string {
  return v === null || v === undefined ? '' : String(v)
}

export function readChoice(s: string): string | boolean | null {
  if (s === '') return null
  return s === 'true' ? true : s === 'false' ? false : s
}

/** Only what differs from the settings shown: berth merges a partial PUT, nested groups key by key. */
export function changes(settings: { proxy?: Values | null }, inputs: readonly FieldValue[]): Values {
  const patch: Values = {}
  const proxy = inputs.find((i) => i.proxySwitch)
  for (const i of inputs) {
    if (i.proxySwitch) continue
    if (i.path[0] === 'proxy') continue
    const now = i.read()
    if (JSON.stringify(now) === JSON.stringify(i.value ?? null)) continue
    const [top, sub] = i.path as [string, string | undefined]
    if (sub === undefined) patch[top] = now
    else ((patch[top] ??= {}) as Values)[sub] = now
  }
  if (proxy) {
    const current = settings.proxy ?? null
    if (!proxy.read()) {
      if (current !== null) patch.proxy = null
    } else {
      const next: Values = {}
      for (const i of inputs.filter((i) => i.path[0] === 'proxy' && i.path.length === 2)) {
        const now = i.read()
        const k = i.path[1]!
        // Turning the proxy on sends every field; changing it only those that changed.
        if (current === null ? now !== null : JSON.stringify(now) !== JSON.stringify(current[k])) next[k] = now
      }
      if (Object.keys(next).length) patch.proxy = next
    }
  }
  return patch
}

/** The names of what a patch changed, nested ones as "group.key": the line saying what was saved. */
export function changedNames(patch: Values): string[] {
  return Object.entries(patch).flatMap(([k, v]) => (v && typeof v === 'object' ? Object.keys(v).map((sub) => `${k}.${sub}`) : [k]))
}
