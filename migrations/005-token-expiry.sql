-- Optional token expiry (`berth token create --expires 30d`): NULL never expires. An expired token is
-- refused like a revoked one, and what it holds open (consoles, log streams, uploads) is ended.
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
