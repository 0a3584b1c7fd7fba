-- Tokens are stored as sha256(secret); the id is the public half of the token and the lookup key.
CREATE TABLE tokens (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  secret_hash BLOB NOT NULL,
  scopes      TEXT NOT NULL,            -- comma separated, validated by the auth module
  apps        TEXT,                     -- comma separated app names, NULL = every app
  created_at  TEXT NOT NULL,
  last_used_at TEXT
);

CREATE TABLE apps (
  name       TEXT PRIMARY KEY,
  created_at TEXT NOT NULL
);

-- A row exists only for a release that is completely unpacked, synced and read-only on disk.
CREATE TABLE releases (
  app            TEXT NOT NULL REFERENCES apps(name),
  id             TEXT NOT NULL,
  version        TEXT NOT NULL,
  sha256         TEXT NOT NULL,
  size           INTEGER NOT NULL,      -- bytes uploaded
  unpacked_bytes INTEGER NOT NULL,
  files          INTEGER NOT NULL,
  uploaded_at    TEXT NOT NULL,
  uploaded_by    TEXT,
  seq            INTEGER NOT NULL,      -- insertion order; "newest first" must not depend on clock resolution
  PRIMARY KEY (app, id),
  UNIQUE (app, sha256)
);
CREATE INDEX releases_by_version ON releases(app, version);

CREATE TABLE events (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  app     TEXT,
  at      TEXT NOT NULL,
  actor   TEXT,
  action  TEXT NOT NULL,
  outcome TEXT NOT NULL,
  detail  TEXT                          -- JSON; never secrets or environment values
);
CREATE INDEX events_by_app ON events(app, seq);
