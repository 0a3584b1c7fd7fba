// The DOM helpers both pages use: elements by id, and elements built with text inserted as text (never markup
// built from API data). elementIn takes its document, so that the rules can be tested without a browser.

type Child = Node | string | number | null | undefined | false | readonly Child[]
type Handlers = { [E in keyof HTMLElementEventMap as `on${E}`]?: (ev: HTMLElementEventMap[E]) => unknown }
/** Attributes: `on*` handlers, `class`, `dataset`; any other is set as an attribute (skipped when null, undefined or false). */
export type Attrs = Handlers & { class?: string | null; dataset?: Record<string, string> } & { [attr: string]: unknown }

/** The element with this id, which the page's own markup (or what the page drew) has. */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  return document.getElementById(id) as T
}

/** The element with this id when it may not be there (a section drawn only on some pages). */
export function find<T extends HTMLElement = HTMLElement>(id: string): T | null {
  return document.getElementById(id) as T | null
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  return elementIn(document, tag, attrs, ...children)
}

export function elementIn<K extends keyof HTMLElementTagNameMap>(doc: Document, tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = doc.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue
    if (k.startsWith('on')) {
      // Handlers are code of the page's own; a string here (API data in the wrong place) is refused, not run.
      if (typeof v !== 'function') throw new TypeError(`${k} must be a function`)
      el.addEventListener(k.slice(2), v as EventListener)
    } else if (k === 'class') el.className = String(v)
    else if (k === 'dataset') Object.assign(el.dataset, v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  el.append(...nodes(doc, children))
  return el
}

/** replaceChildren that skips null and false (the DOM method would show them as the text "null"). */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren(...nodes(el.ownerDocument, children))
}

/** Children flattened, empty ones dropped, and every string or number made a text node. */
function nodes(doc: Document, children: readonly Child[], out: Node[] = []): Node[] {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue
    if (Array.isArray(c)) nodes(doc, c as readonly Child[], out)
    else out.push(typeof c === 'string' || typeof c === 'number' ? doc.createTextNode(String(c)) : (c as Node))
  }
  return out
}
