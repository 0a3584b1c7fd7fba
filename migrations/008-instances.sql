-- Zero-downtime deploys: with the proxy on, an app's node runs in one of two slots (a, b), each instance on
-- its own loopback port; the nodes row describes the live instance, and slot/port stay NULL with the proxy off.
ALTER TABLE nodes ADD COLUMN slot TEXT;
ALTER TABLE nodes ADD COLUMN port INTEGER;

-- The other instance of a proxied app, while it starts and is verified (before the switch) or while it
-- drains (after it). At most one per app: with the live one, never more than two instances at once.
CREATE TABLE instances (
  app          TEXT PRIMARY KEY REFERENCES apps(name),
  slot         TEXT NOT NULL,            -- a | b, never the live instance's
  port         INTEGER NOT NULL,
  release_id   TEXT NOT NULL,
  pid          INTEGER,                  -- run_erl's pid
  start_ticks  INTEGER,
  role         TEXT NOT NULL,            -- starting | draining
  started_at   TEXT,
  drain_until  TEXT                      -- when a draining instance's remaining connections are closed
);
