-- App environments sealed with a key kept outside this database (src/secrets/env-vault.ts): one row per variable,
-- the value AES-256-GCM encrypted and bound to (app, name), with the id of the key that sealed it, so that keys
-- can be rotated. The clear apps.env column of earlier versions is moved here (encrypted) by berth at start,
-- then emptied; it stays only so that this file need not rebuild the apps table.
CREATE TABLE env_values (
  app     TEXT NOT NULL REFERENCES apps(name),
  name    TEXT NOT NULL,
  key_id  TEXT NOT NULL,                 -- keyId(): a hash of the key, never the key
  nonce   BLOB NOT NULL,                 -- 96 bits, random per value
  sealed  BLOB NOT NULL,                 -- ciphertext, then the 128-bit GCM tag
  PRIMARY KEY (app, name)
);
CREATE INDEX env_values_by_key ON env_values(key_id);
