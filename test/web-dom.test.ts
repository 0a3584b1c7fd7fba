/// <reference lib="dom" />
// The pages' element builder, in node with a tiny stand-in document: text from the API becomes text nodes,
// never markup; empty children are dropped; attributes are set as given, and a handler must be a function.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { elementIn } from '../src/web/dom.js'

interface FakeNode {
  kind: 'element' | 'text'
  tag?: string
  data?: string
  className?: string
  attrs: Record<string, string>
  dataset: Record<string, string>
  listeners: Record<string, unknown>
  children: FakeNode[]
}

const fakeDocument = {
  createElement(tag: string) {
    const el: FakeNode & Record<string, unknown> = {
      kind: 'element', tag, attrs: {}, dataset: {}, listeners: {}, children: [],
      setAttribute: (k: string, v: string) => void (el.attrs[k] = v),
      addEventListener: (k: string, f: unknown) => void (el.listeners[k] = f),
      append: (...c: FakeNode[]) => void el.children.push(...c),
    }
    return el
  },
  createTextNode: (data: string): FakeNode => ({ kind: 'text', data, attrs: {}, dataset: {}, listeners: {}, children: [] }),
} as unknown as Document

const build = (...args: Parameters<typeof elementIn> extends [Document, ...infer R] ? R : never) => elementIn(fakeDocument, ...args) as unknown as FakeNode

test('text that looks like markup stays text', () => {
  const hostile = '<img src=x onerror="window.__xss=1"><script>alert(1)</script>'
  const el = build('td', null, hostile, 42)
  assert.deepEqual(el.children.map((c) => [c.kind, c.data]), [['text', hostile], ['text', '42']])
})

test('children are flattened; null, undefined and false are dropped, 0 and "" are kept', () => {
  const el = build('ul', null, [['a', null], [undefined, false, ['b']]], 0, '')
  assert.deepEqual(el.children.map((c) => c.data), ['a', 'b', '0', ''])
})

test('attributes: class, dataset, true as present, null/false/undefined left out, values as strings', () => {
  const el = build('input', { class: 'x y', dataset: { app: '"><b>' }, required: true, hidden: false, title: null, placeholder: undefined, max: 100, value: '"><script>' })
  assert.equal(el.className, 'x y')
  assert.deepEqual(el.dataset, { app: '"><b>' })
  assert.deepEqual(el.attrs, { required: '', max: '100', value: '"><script>' })
})

test('handlers are functions of the page; a string in their place is refused, never run', () => {
  const click = () => {}
  assert.equal(build('button', { onclick: click }).listeners.click, click)
  assert.throws(() => build('button', { onclick: 'alert(1)' } as never), /onclick must be a function/)
})

test('a node given as a child is appended as it is', () => {
  const inner = build('b', null, 'x')
  const outer = build('p', null, inner as unknown as Node)
  assert.equal(outer.children[0], inner)
})
