-- One row per console session: a remote shell (`bin/APP remote`) or a viewer attached to the node's own
-- console. Typed input is never stored; the output is in the asciicast file named by recording (relative to
-- the app's directory) until retention deletes the file and sets recording to NULL. The row stays: it is
-- the audit record of who had a shell on the node, when, and for how long.
CREATE TABLE sessions (
  id          TEXT PRIMARY KEY,
  seq         INTEGER NOT NULL UNIQUE,  -- insertion order; "newest first" must not depend on clock resolution
  app         TEXT NOT NULL REFERENCES apps(name),
  kind        TEXT NOT NULL,            -- remote | attach
  actor       TEXT,                     -- name of the token that opened it
  release_id  TEXT,                     -- the release whose node it talked to
  started_at  TEXT NOT NULL,
  ended_at    TEXT,
  end_reason  TEXT,                     -- exited | closed | idle | detached | console closed | shutdown | interrupted ...
  exit_code   INTEGER,
  bytes_in    INTEGER NOT NULL DEFAULT 0,
  bytes_out   INTEGER NOT NULL DEFAULT 0,
  recording   TEXT
);
CREATE INDEX sessions_by_app ON sessions(app, seq);
