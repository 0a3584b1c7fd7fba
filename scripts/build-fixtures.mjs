#!/usr/bin/env node
// Builds the Elixir release tarballs used by berth's test suite from the
// fixture Mix project in test/fixtures/hello.
//
//   node scripts/build-fixtures.mjs [--force]
//
// Output dir: $BERTH_FIXTURES_OUT (default <repo>/test/.fixtures):
//   <variant>.tar.gz     release tarball per variant
//   manifest.json        { sourceHash, variants: { v1: { tarball, app, version, sha256, size }, ... } }
//   src-<variant>/       fresh copy of the Mix project the variant was built in
//   logs/<variant>.log   mix output
//   .mix/ .hex/          MIX_HOME / HEX_HOME (nothing is written to $HOME)
//
// If manifest.json carries the current source hash and every tarball exists,
// prints "fixtures up to date" and exits 0 without touching anything.
// No npm dependencies; requires `mix` (Elixir) on PATH. No hex needed.
//
// Can also be imported: `import { buildFixtures } from './build-fixtures.mjs'`
// resolves to the manifest object.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SCRIPT = fileURLToPath(import.meta.url);
const REPO = path.resolve(path.dirname(SCRIPT), '..');
const FIXTURE_SRC = path.join(REPO, 'test', 'fixtures', 'hello');
const APP = 'hello';
const CONCURRENCY = 2;

// Ecto-style migration file shipped only by v2 (plain text, no Ecto dep).
const V2_MIGRATION = {
  path: 'priv/repo/migrations/20240101000000_add_things.exs',
  content: `defmodule Hello.Repo.Migrations.AddThings do
  # Ecto-style migration fixture (Ecto is not a dependency; text only).
  use Ecto.Migration

  def change do
    create table(:things) do
      add :name, :string
      timestamps()
    end
  end
end
`,
};

export const VARIANTS = {
  v1: { version: '0.1.0', mode: 'ok' },
  v2: { version: '0.2.0', mode: 'ok', extraFiles: [V2_MIGRATION] },
  crash_on_boot: { version: '0.3.0', mode: 'crash_on_boot' },
  crash_after_boot: { version: '0.3.1', mode: 'crash_after_boot' },
  migrate_fail: { version: '0.4.0', mode: 'migrate_fail' },
  migrate_hang: { version: '0.5.0', mode: 'migrate_hang' },
};

// Paths inside the fixture dir that are build artefacts, not source.
const IGNORED = new Set(['_build', 'deps', '.elixir_ls', 'erl_crash.dump', 'cover', 'doc']);

function defaultOut() {
  return path.resolve(process.env.BERTH_FIXTURES_OUT || path.join(REPO, 'test', '.fixtures'));
}

async function listFiles(dir, rel = '') {
  const out = [];
  const entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
  for (const e of entries) {
    if (IGNORED.has(e.name)) continue;
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, r)));
    else if (e.isFile()) out.push(r);
  }
  return out.sort();
}

export async function computeSourceHash() {
  const h = createHash('sha256');
  h.update('berth-fixtures-v1\0');
  for (const rel of await listFiles(FIXTURE_SRC)) {
    h.update(`file\0${rel}\0`);
    h.update(await fs.readFile(path.join(FIXTURE_SRC, rel)));
    h.update('\0');
  }
  h.update('script\0');
  h.update(await fs.readFile(SCRIPT));
  return h.digest('hex');
}

async function exists(p) {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

async function readManifest(out) {
  try {
    return JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'));
  } catch {
    return null;
  }
}

async function isUpToDate(out, hash) {
  const m = await readManifest(out);
  if (!m || m.sourceHash !== hash || !m.variants) return null;
  for (const name of Object.keys(VARIANTS)) {
    const v = m.variants[name];
    if (!v || v.tarball !== path.join(out, `${name}.tar.gz`)) return null;
    try {
      const st = await fs.stat(v.tarball);
      if (st.size !== v.size) return null;
    } catch {
      return null;
    }
  }
  return m;
}

function findOnPath(cmd) {
  const dirs = (process.env.PATH || '').split(path.delimiter).filter(Boolean);
  return (async () => {
    for (const d of dirs) {
      const p = path.join(d, cmd);
      try {
        await fs.access(p, fs.constants.X_OK);
        return p;
      } catch {}
    }
    return null;
  })();
}

function sha256File(file) {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

// --- simple cross-process lock (mkdir), so concurrent test runners don't
// build into the same directory at the same time -------------------------
async function acquireLock(out) {
  const lock = path.join(out, '.lock');
  let announced = false;
  for (;;) {
    try {
      await fs.mkdir(lock);
      await fs.writeFile(path.join(lock, 'pid'), String(process.pid));
      return async () => {
        await fs.rm(lock, { recursive: true, force: true });
      };
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    // Stale lock? (holder died)
    let pid = NaN;
    try {
      pid = Number(await fs.readFile(path.join(lock, 'pid'), 'utf8'));
    } catch {}
    if (Number.isInteger(pid) && pid > 0) {
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch (e) {
        alive = e.code === 'EPERM';
      }
      if (!alive) {
        await fs.rm(lock, { recursive: true, force: true });
        continue;
      }
    } else {
      // Lock dir without pid file: give its creator a moment, then treat as stale.
      const st = await fs.stat(lock).catch(() => null);
      if (!st || Date.now() - st.mtimeMs > 10_000) {
        await fs.rm(lock, { recursive: true, force: true });
        continue;
      }
    }
    if (!announced) {
      console.log(`waiting for another fixture build (pid ${pid}) to finish...`);
      announced = true;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function run(cmd, args, opts, logFile) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks = [];
    child.stdout.on('data', (d) => chunks.push(d));
    child.stderr.on('data', (d) => chunks.push(d));
    child.on('error', reject);
    child.on('close', async (code, signal) => {
      const output = Buffer.concat(chunks).toString('utf8');
      await fs.writeFile(logFile, output).catch(() => {});
      resolve({ code, signal, output });
    });
  });
}

async function buildVariant(out, name, spec, mixPath) {
  const started = Date.now();
  const src = path.join(out, `src-${name}`);
  await fs.rm(src, { recursive: true, force: true });
  await fs.cp(FIXTURE_SRC, src, {
    recursive: true,
    filter: (p) => !IGNORED.has(path.basename(p)),
  });
  for (const f of spec.extraFiles || []) {
    const dest = path.join(src, f.path);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    await fs.writeFile(dest, f.content);
  }

  const env = { ...process.env };
  for (const k of ['MIX_TARGET', 'MIX_BUILD_PATH', 'MIX_BUILD_ROOT', 'MIX_DEPS_PATH', 'MIX_PROJECT', 'MIX_EXS', 'MIX_LOCKFILE', 'ERL_LIBS', 'RELEASE_NAME', 'RELEASE_VSN']) {
    delete env[k];
  }
  Object.assign(env, {
    MIX_ENV: 'prod',
    MIX_HOME: path.join(out, '.mix'),
    HEX_HOME: path.join(out, '.hex'),
    HEX_OFFLINE: '1',
    MIX_QUIET: '0',
    HELLO_VSN: spec.version,
    HELLO_MODE: spec.mode,
  });

  const logFile = path.join(out, 'logs', `${name}.log`);
  const res = await run(mixPath, ['release', '--overwrite'], { cwd: src, env }, logFile);
  if (res.code !== 0) {
    const tail = res.output.split('\n').slice(-30).join('\n');
    throw new Error(
      `mix release failed for variant ${name} (exit ${res.code ?? res.signal}); log: ${logFile}\n${tail}`,
    );
  }

  const built = path.join(src, '_build', 'prod', `${APP}-${spec.version}.tar.gz`);
  if (!(await exists(built))) {
    throw new Error(`mix release for ${name} did not produce ${built}; log: ${logFile}`);
  }
  const tarball = path.join(out, `${name}.tar.gz`);
  const tmp = `${tarball}.tmp-${process.pid}`;
  await fs.copyFile(built, tmp);
  await fs.rename(tmp, tarball);
  const st = await fs.stat(tarball);
  const entry = {
    tarball,
    app: APP,
    version: spec.version,
    mode: spec.mode,
    sha256: await sha256File(tarball),
    size: st.size,
  };
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`built ${name} (${APP} ${spec.version}, mode ${spec.mode}) in ${secs}s -> ${tarball} (${st.size} bytes)`);
  return entry;
}

async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  let failed = null;
  async function worker() {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        results[i] = await fn(items[i]);
      } catch (err) {
        failed = failed || err;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw failed;
  return results;
}

export async function buildFixtures({ out = defaultOut(), force = false } = {}) {
  out = path.resolve(out);
  await fs.mkdir(out, { recursive: true });
  const hash = await computeSourceHash();

  if (!force) {
    const m = await isUpToDate(out, hash);
    if (m) {
      console.log('fixtures up to date');
      return m;
    }
  }

  const release = await acquireLock(out);
  try {
    // Someone else may have built them while we waited for the lock.
    if (!force) {
      const m = await isUpToDate(out, hash);
      if (m) {
        console.log('fixtures up to date');
        return m;
      }
    }

    const mixPath = await findOnPath('mix');
    if (!mixPath) {
      throw Object.assign(
        new Error('build-fixtures: `mix` (Elixir) not found on PATH; install Elixir >= 1.14 / OTP >= 25 to build the test fixtures'),
        { exitCode: 2 },
      );
    }

    await fs.rm(path.join(out, 'manifest.json'), { force: true });
    await fs.mkdir(path.join(out, 'logs'), { recursive: true });
    await fs.mkdir(path.join(out, '.mix'), { recursive: true });
    await fs.mkdir(path.join(out, '.hex'), { recursive: true });

    const started = Date.now();
    const names = Object.keys(VARIANTS);
    const entries = await pool(names, CONCURRENCY, (name) => buildVariant(out, name, VARIANTS[name], mixPath));
    const manifest = { sourceHash: hash, variants: {} };
    names.forEach((n, i) => (manifest.variants[n] = entries[i]));

    const mf = path.join(out, 'manifest.json');
    await fs.writeFile(`${mf}.tmp-${process.pid}`, JSON.stringify(manifest, null, 2) + '\n');
    await fs.rename(`${mf}.tmp-${process.pid}`, mf);
    console.log(`all ${names.length} fixtures built in ${((Date.now() - started) / 1000).toFixed(1)}s -> ${mf}`);
    return manifest;
  } finally {
    await release();
  }
}

const isMain = process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url;
if (isMain) {
  const force = process.argv.includes('--force');
  buildFixtures({ force }).then(
    () => process.exit(0),
    (err) => {
      console.error(err.message || err);
      process.exit(err.exitCode || 1);
    },
  );
}
