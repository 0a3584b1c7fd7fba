-- Per-app settings and environment. env holds secrets: it is never logged and the API shows only names.
ALTER TABLE apps ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE apps ADD COLUMN env TEXT NOT NULL DEFAULT '{}';

-- One row per deployment or rollback. steps is a JSON array of {name, state, startedAt, endedAt, output}.
CREATE TABLE deployments (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT NOT NULL UNIQUE,
  app          TEXT NOT NULL REFERENCES apps(name),
  kind         TEXT NOT NULL,            -- deploy | rollback
  release_id   TEXT NOT NULL,
  previous_id  TEXT,                     -- what current pointed at when it began
  state        TEXT NOT NULL,            -- pending migrating switching starting verifying succeeded failed rolled_back
  reason       TEXT,
  warnings     TEXT NOT NULL DEFAULT '[]',
  steps        TEXT NOT NULL DEFAULT '[]',
  actor        TEXT,
  created_at   TEXT NOT NULL,
  finished_at  TEXT
);
CREATE INDEX deployments_by_app ON deployments(app, seq);

-- The per-app lock. owner is the agent instance that took it; a restarted agent clears other owners'
-- rows at start, so a lock never outlives the process that held it.
CREATE TABLE locks (
  app        TEXT PRIMARY KEY,
  owner      TEXT NOT NULL,
  deployment TEXT NOT NULL,
  taken_at   TEXT NOT NULL
);

-- The node berth supervises for each app: enough to find it again after berth restarts.
CREATE TABLE nodes (
  app          TEXT PRIMARY KEY REFERENCES apps(name),
  release_id   TEXT NOT NULL,
  pid          INTEGER,                  -- run_erl's pid (leader of the node's process group)
  start_ticks  INTEGER,                  -- /proc/PID/stat starttime: a reused pid is not our node
  desired      TEXT NOT NULL,            -- running | stopped
  started_at   TEXT,
  restarts     INTEGER NOT NULL DEFAULT 0,
  last_exit    TEXT
);
