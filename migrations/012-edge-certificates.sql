-- The certificates the shared edge serves (issue 25), one per hostname: where each came from, what it
-- covers and until when, and for ACME ones the renewal bookkeeping that must survive a restart (failures,
-- next attempt), so a berth restarted in a loop never retries faster than its backoff says. The PEM itself
-- (chain then key) is a file under edge/certs, mode 0600: key material never enters the database.
CREATE TABLE edge_certificates (
  host            TEXT PRIMARY KEY,
  app             TEXT NOT NULL REFERENCES apps(name),
  source          TEXT NOT NULL,           -- acme | custom
  state           TEXT NOT NULL,           -- pending | valid | renewing | failed
  not_before      TEXT,                    -- NULL until a certificate exists
  not_after       TEXT,
  issuer          TEXT,
  subject         TEXT,
  sans            TEXT,                    -- JSON list of DNS names
  serial          TEXT,
  fingerprint     TEXT,                    -- sha256 of the leaf, as X509Certificate.fingerprint256
  last_error      TEXT,
  failures        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT,                    -- ACME: not before this (backoff); NULL: when due
  updated_at      TEXT NOT NULL
);
CREATE INDEX edge_certificates_app ON edge_certificates (app);

-- ACME orders tried, per hostname, for the hourly cap (Let's Encrypt: 5 failed validations per hostname and
-- hour); rows older than a day are dropped as new ones come.
CREATE TABLE acme_attempts (
  host     TEXT NOT NULL,
  at       TEXT NOT NULL,
  outcome  TEXT NOT NULL                   -- ok | failed
);
CREATE INDEX acme_attempts_host_at ON acme_attempts (host, at);
