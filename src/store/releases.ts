// Repository for the `apps` and `releases` tables. A release row is written only once its directory is
// complete, synced and read-only, so anything listed here is deployable.

import type { Database } from './db.js'
import { deepFreeze, now, RowCache } from './db.js'

/** What built a release (see releases/kinds.ts); null for a row from before berth recorded it. */
export type ReleaseKind = 'mix' | 'relx' | 'distillery' | 'unknown'

export interface Release {
  id: string
  app: string
  version: string
  sha256: string
  size: number
  unpackedBytes: number
  files: number
  uploadedAt: string
  uploadedBy: string | null
  kind: ReleaseKind | null
}

interface Row {
  id: string
  app: string
  version: string
  sha256: string
  size: number
  unpacked_bytes: number
  files: number
  uploaded_at: string
  uploaded_by: string | null
  kind: ReleaseKind | null
}

function toRelease(r: Row): Release {
  return {
    id: r.id,
    app: r.app,
    version: r.version,
    sha256: r.sha256,
    size: r.size,
    unpackedBytes: r.unpacked_bytes,
    files: r.files,
    uploadedAt: r.uploaded_at,
    uploadedBy: r.uploaded_by,
    kind: r.kind,
  }
}

export class ReleaseStore {
  /** Every request that names an app asks this first; kept while the database does not change (db.ts generation()). */
  private readonly exists: RowCache<string, boolean>
  /** apps(), frozen: what GET /v1/apps answers. */
  private readonly appsList: RowCache<'', readonly Readonly<{ name: string; createdAt: string; releases: number }>[]>
  /** list(), frozen: what GET /v1/apps/{app}/releases answers. */
  private readonly listOf: RowCache<string, readonly Readonly<Release>[]>

  constructor(private readonly db: Database) {
    this.exists = new RowCache(db)
    this.listOf = new RowCache(db)
    this.appsList = new RowCache(db)
  }

  ensureApp(app: string): void {
    this.db.prepare('INSERT INTO apps (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING').run(app, now())
  }

  appExists(app: string): boolean {
    return this.exists.get(app, () => this.db.prepare('SELECT 1 FROM apps WHERE name = ?').get(app) !== undefined)
  }

  /** Every app with its number of releases, by name; frozen (shared between callers). */
  apps(): readonly Readonly<{ name: string; createdAt: string; releases: number }>[] {
    return this.appsList.get('', () =>
      deepFreeze(
        (
          this.db
            .prepare('SELECT a.name, a.created_at, (SELECT count(*) FROM releases r WHERE r.app = a.name) AS releases FROM apps a ORDER BY a.name')
            .all() as { name: string; created_at: string; releases: number }[]
        ).map((r) => ({ name: r.name, createdAt: r.created_at, releases: r.releases })),
      ),
    )
  }

  insert(rel: Release): void {
    this.db.transaction(() => {
      this.ensureApp(rel.app)
      this.db
        .prepare(
          `INSERT INTO releases (app, id, version, sha256, size, unpacked_bytes, files, uploaded_at, uploaded_by, kind, seq)
           VALUES (@app, @id, @version, @sha256, @size, @unpackedBytes, @files, @uploadedAt, @uploadedBy, @kind,
                   (SELECT coalesce(max(seq), 0) + 1 FROM releases))`,
        )
        .run(rel)
    }).immediate()
  }

  get(app: string, id: string): Release | null {
    const r = this.db.prepare('SELECT * FROM releases WHERE app = ? AND id = ?').get(app, id) as Row | undefined
    return r ? toRelease(r) : null
  }

  bySha(app: string, sha256: string): Release | null {
    const r = this.db.prepare('SELECT * FROM releases WHERE app = ? AND sha256 = ?').get(app, sha256) as Row | undefined
    return r ? toRelease(r) : null
  }

  byVersion(app: string, version: string): Release[] {
    return (this.db.prepare('SELECT * FROM releases WHERE app = ? AND version = ? ORDER BY seq DESC').all(app, version) as Row[]).map(toRelease)
  }

  /** Newest first; frozen (shared between callers). */
  list(app: string): readonly Readonly<Release>[] {
    return this.listOf.get(app, () => deepFreeze((this.db.prepare('SELECT * FROM releases WHERE app = ? ORDER BY seq DESC').all(app) as Row[]).map(toRelease)))
  }

  ids(app: string): Set<string> {
    return new Set((this.db.prepare('SELECT id FROM releases WHERE app = ?').all(app) as { id: string }[]).map((r) => r.id))
  }

  /** Completes a release re-imported without its checksum, once the same bytes have been uploaded again. */
  setChecksum(app: string, id: string, sha256: string, size: number): void {
    this.db.prepare('UPDATE releases SET sha256 = ?, size = ? WHERE app = ? AND id = ?').run(sha256, size, app, id)
  }

  /** Rows uploaded before berth recorded the kind. */
  withoutKind(): { app: string; id: string; version: string }[] {
    return this.db.prepare('SELECT app, id, version FROM releases WHERE kind IS NULL').all() as { app: string; id: string; version: string }[]
  }

  setKind(app: string, id: string, kind: ReleaseKind): void {
    this.db.prepare('UPDATE releases SET kind = ? WHERE app = ? AND id = ?').run(kind, app, id)
  }

  delete(app: string, id: string): boolean {
    return this.db.prepare('DELETE FROM releases WHERE app = ? AND id = ?').run(app, id).changes > 0
  }
}
