// src/generated/ holds only what scripts write, and what they wrote is current: each file is made again in memory
// from its source (openapi.yaml) and compared with the one on disk. Reads the repository, so it needs no build.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { REPO } from './helpers/fixtures.js'

interface Generator {
  GENERATED_DIR: string
  COMMAND: string
  generateAll(): Promise<{ file: string; text: string }[]>
}

// The script itself, not a compiled copy (scripts/ is plain JavaScript run by node, outside tsc's build).
const generator = (await import(pathToFileURL(path.join(REPO, 'scripts', 'gen-api-types.mjs')).href)) as Generator

test('every file in src/generated/ is what scripts/gen-api-types.mjs makes from openapi.yaml now', async () => {
  const outputs = await generator.generateAll()
  assert.ok(outputs.length >= 2, 'the generator names its outputs')
  for (const { file, text } of outputs) {
    const name = path.relative(REPO, file)
    assert.equal(path.dirname(file), generator.GENERATED_DIR, `${name} is written outside src/generated/`)
    assert.ok(fs.existsSync(file), `${name} is missing: run \`${generator.COMMAND}\``)
    // Not assert.equal on the texts: a 2.5k-line diff would bury the one line that matters, the command.
    assert.ok(fs.readFileSync(file, 'utf8') === text, `${name} is out of date with openapi.yaml: run \`${generator.COMMAND}\` and commit the result`)
  }
  const written = new Set(outputs.map((o) => path.basename(o.file)))
  const stray = fs.readdirSync(generator.GENERATED_DIR).filter((f) => !written.has(f))
  assert.deepEqual(stray, [], 'src/generated/ holds only generated files: move hand-written ones next to their owner')
})

test('each generated file says what generates it and how to make it again', async () => {
  for (const { file } of await generator.generateAll()) {
    const text = fs.readFileSync(file, 'utf8')
    const head = file.endsWith('.json') ? String((JSON.parse(text) as { generatedBy?: unknown }).generatedBy) : text.split('\n').slice(0, 3).join('\n')
    assert.match(head, /scripts\/gen-api-types\.mjs/, `${path.relative(REPO, file)} names its generator`)
    assert.ok(head.includes(generator.COMMAND), `${path.relative(REPO, file)} names the command that remakes it`)
  }
})
