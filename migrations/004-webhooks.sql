-- Webhooks: URLs that receive deployment and app-state events as signed JSON. app NULL = every app.
-- The secret signs payloads (HMAC-SHA256); it is shown once at creation, like a token, but must be kept
-- in clear here because berth has to compute signatures with it.
CREATE TABLE webhooks (
  id         TEXT PRIMARY KEY,
  app        TEXT,
  url        TEXT NOT NULL,
  secret     TEXT NOT NULL,
  events     TEXT NOT NULL,              -- comma separated action prefixes, e.g. "deploy,rollback,node."
  created_at TEXT NOT NULL
);

-- One row per event and webhook; retried with backoff until delivered or out of attempts.
CREATE TABLE webhook_deliveries (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT NOT NULL UNIQUE,
  webhook_id   TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  event        TEXT NOT NULL,
  payload      TEXT NOT NULL,
  state        TEXT NOT NULL,            -- pending | delivered | failed
  attempts     INTEGER NOT NULL DEFAULT 0,
  last_status  INTEGER,
  last_error   TEXT,
  next_at      INTEGER NOT NULL,         -- epoch ms of the next attempt
  created_at   TEXT NOT NULL,
  delivered_at TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_at);
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries(webhook_id, seq);
