#!/usr/bin/env node
// Builds the release tarballs used by berth's test suite from the fixture
// projects in test/fixtures/: the Mix project hello (in several variants),
// Mix projects that do not follow berth's own naming (myapp: app :myapp with
// modules MyApp.*; shop: app :shop released as `storefront`), the attacker's
// release snoop (issue 26: its migration and rpc try to reach what they must
// not), and the rebar3 project relx_hello (`rebar3 as prod tar`).
//
//   node scripts/build-fixtures.mjs [--force]
//
// Output dir: $BERTH_FIXTURES_OUT (default <repo>/test/.fixtures):
//   <variant>.tar.gz     release tarball per variant
//   manifest.json        { variants: { v1: { tarball, app, version, sha256, size, sourceHash }, ... } }
//   src-<variant>/       fresh copy of the project the variant was built in
//   logs/<variant>.log   mix / rebar3 output
//   .mix/ .hex/ .rebar3/ MIX_HOME / HEX_HOME / rebar3's HOME (nothing is written to $HOME)
//
// Each variant carries the hash of its project's sources and of this script:
// only variants whose hash changed (or whose tarball is missing) are rebuilt,
// and when none did it prints "fixtures up to date" and touches nothing.
// No npm dependencies; requires `mix` (Elixir) and `rebar3` on PATH. No hex needed.
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
const FIXTURES = path.join(REPO, 'test', 'fixtures');
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

const hello = (version, mode, extra = {}) => ({ project: 'hello', tool: 'mix', app: 'hello', version, mode, ...extra });

// `app` is the release name (bin/APP, the tarball's name); `version` must match the project's.
export const VARIANTS = {
  v1: hello('0.1.0', 'ok'),
  v2: hello('0.2.0', 'ok', { extraFiles: [V2_MIGRATION] }),
  crash_on_boot: hello('0.3.0', 'crash_on_boot'),
  crash_after_boot: hello('0.3.1', 'crash_after_boot'),
  // Answers `pid` for HELLO_BOOT_DELAY_MS (default 4 s) while Application.start sleeps, then raises with
  // HELLO_BOOT_ERROR in the message: a release that looks up but never boots.
  slow_raise: hello('0.3.2', 'slow_raise'),
  migrate_fail: hello('0.4.0', 'migrate_fail'),
  migrate_hang: hello('0.5.0', 'migrate_hang'),
  myapp: { project: 'myapp', tool: 'mix', app: 'myapp', version: '1.0.0' },
  storefront: { project: 'shop', tool: 'mix', app: 'storefront', version: '2.0.0' },
  // Tries berth's files and another app's cookie, env and BEAM from its migration and through rpc (isolation).
  snoop: { project: 'snoop', tool: 'mix', app: 'snoop', version: '0.1.0' },
  relx: { project: 'relx_hello', tool: 'rebar3', app: 'relx_hello', version: '0.3.0' },
};

// Paths inside the fixture dir that are build artefacts, not source.
const IGNORED = new Set(['_build', 'deps', '.elixir_ls', 'erl_crash.dump', 'rebar3.crashdump', 'cover', 'doc']);

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

/** Hash of one fixture project's sources and of this script (which holds the variants' specs). */
export async function computeSourceHash(project) {
  const dir = path.join(FIXTURES, project);
  const h = createHash('sha256');
  h.update(`berth-fixtures-v2\0${project}\0`);
  for (const rel of await listFiles(dir)) {
    h.update(`file\0${rel}\0`);
    h.update(await fs.readFile(path.join(dir, rel)));
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

/** The manifest's entries that are still good, and the names of the variants to (re)build. */
async function staleVariants(out, hashes) {
  const m = await readManifest(out);
  const good = {};
  const stale = [];
  for (const [name, spec] of Object.entries(VARIANTS)) {
    const v = m?.variants?.[name];
    let ok = !!v && v.sourceHash === hashes[spec.project] && v.tarball === path.join(out, `${name}.tar.gz`);
    if (ok) ok = await fs.stat(v.tarball).then((st) => st.size === v.size, () => false);
    if (ok) good[name] = v;
    else stale.push(name);
  }
  return { good, stale };
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

function cleanEnv() {
  const env = { ...process.env };
  for (const k of ['MIX_TARGET', 'MIX_BUILD_PATH', 'MIX_BUILD_ROOT', 'MIX_DEPS_PATH', 'MIX_PROJECT', 'MIX_EXS', 'MIX_LOCKFILE', 'ERL_LIBS', 'RELEASE_NAME', 'RELEASE_VSN', 'REBAR_CONFIG', 'REBAR_PROFILE']) {
    delete env[k];
  }
  return env;
}

/** How each tool builds a release tarball, and where it leaves it. */
const TOOLS = {
  mix: {
    args: () => ['release', '--overwrite'],
    env: (out, spec) => ({
      MIX_ENV: 'prod',
      MIX_HOME: path.join(out, '.mix'),
      HEX_HOME: path.join(out, '.hex'),
      HEX_OFFLINE: '1',
      MIX_QUIET: '0',
      ...(spec.project === 'hello' ? { HELLO_VSN: spec.version, HELLO_MODE: spec.mode } : {}),
    }),
    tarball: (src, spec) => path.join(src, '_build', 'prod', `${spec.app}-${spec.version}.tar.gz`),
  },
  rebar3: {
    args: () => ['as', 'prod', 'tar'],
    // rebar3 keeps its cache and global config under HOME; give it one of ours.
    env: (out) => ({ HOME: path.join(out, '.rebar3'), REBAR_CACHE_DIR: path.join(out, '.rebar3', 'cache'), REBAR_COLOR: 'none' }),
    tarball: (src, spec) => path.join(src, '_build', 'prod', 'rel', spec.app, `${spec.app}-${spec.version}.tar.gz`),
  },
};

async function buildVariant(out, name, spec, toolPaths, sourceHash) {
  const started = Date.now();
  const tool = TOOLS[spec.tool];
  const src = path.join(out, `src-${name}`);
  await fs.rm(src, { recursive: true, force: true });
  await fs.cp(path.join(FIXTURES, spec.project), src, {
    recursive: true,
    filter: (p) => !IGNORED.has(path.basename(p)),
  });
  for (const f of spec.extraFiles || []) {
    const dest = path.join(src, f.path);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    await fs.writeFile(dest, f.content);
  }

  const env = { ...cleanEnv(), ...tool.env(out, spec) };
  const logFile = path.join(out, 'logs', `${name}.log`);
  const res = await run(toolPaths[spec.tool], tool.args(), { cwd: src, env }, logFile);
  if (res.code !== 0) {
    const tail = res.output.split('\n').slice(-30).join('\n');
    throw new Error(
      `${spec.tool} failed for variant ${name} (exit ${res.code ?? res.signal}); log: ${logFile}\n${tail}`,
    );
  }

  const built = tool.tarball(src, spec);
  if (!(await exists(built))) {
    throw new Error(`${spec.tool} for ${name} did not produce ${built}; log: ${logFile}`);
  }
  const tarball = path.join(out, `${name}.tar.gz`);
  const tmp = `${tarball}.tmp-${process.pid}`;
  await fs.copyFile(built, tmp);
  await fs.rename(tmp, tarball);
  const st = await fs.stat(tarball);
  const entry = {
    tarball,
    app: spec.app,
    version: spec.version,
    ...(spec.mode ? { mode: spec.mode } : {}),
    sha256: await sha256File(tarball),
    size: st.size,
    sourceHash,
  };
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`built ${name} (${spec.app} ${spec.version}${spec.mode ? `, mode ${spec.mode}` : ''}) in ${secs}s -> ${tarball} (${st.size} bytes)`);
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

async function projectHashes() {
  const hashes = {};
  for (const project of new Set(Object.values(VARIANTS).map((v) => v.project))) hashes[project] = await computeSourceHash(project);
  return hashes;
}

export async function buildFixtures({ out = defaultOut(), force = false } = {}) {
  out = path.resolve(out);
  await fs.mkdir(out, { recursive: true });
  const hashes = await projectHashes();

  if (!force) {
    const { good, stale } = await staleVariants(out, hashes);
    if (stale.length === 0) {
      console.log('fixtures up to date');
      return { variants: good };
    }
  }

  const release = await acquireLock(out);
  try {
    // Someone else may have built them while we waited for the lock.
    const { good, stale } = force ? { good: {}, stale: Object.keys(VARIANTS) } : await staleVariants(out, hashes);
    if (stale.length === 0) {
      console.log('fixtures up to date');
      return { variants: good };
    }

    const toolPaths = {};
    for (const tool of new Set(stale.map((n) => VARIANTS[n].tool))) {
      toolPaths[tool] = await findOnPath(tool);
      if (!toolPaths[tool]) {
        const what = tool === 'mix' ? '`mix` (Elixir >= 1.14 / OTP >= 25)' : '`rebar3` (apt-get install rebar3)';
        throw Object.assign(new Error(`build-fixtures: ${what} not found on PATH; it builds the ${stale.filter((n) => VARIANTS[n].tool === tool).join(', ')} fixtures`), { exitCode: 2 });
      }
    }

    await fs.mkdir(path.join(out, 'logs'), { recursive: true });
    for (const d of ['.mix', '.hex', '.rebar3']) await fs.mkdir(path.join(out, d), { recursive: true });

    const started = Date.now();
    const entries = await pool(stale, CONCURRENCY, (name) => buildVariant(out, name, VARIANTS[name], toolPaths, hashes[VARIANTS[name].project]));
    const manifest = { variants: { ...good } };
    stale.forEach((n, i) => (manifest.variants[n] = entries[i]));

    const mf = path.join(out, 'manifest.json');
    await fs.writeFile(`${mf}.tmp-${process.pid}`, JSON.stringify(manifest, null, 2) + '\n');
    await fs.rename(`${mf}.tmp-${process.pid}`, mf);
    console.log(`${stale.length} of ${Object.keys(VARIANTS).length} fixtures built in ${((Date.now() - started) / 1000).toFixed(1)}s -> ${mf}`);
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
