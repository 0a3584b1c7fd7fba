-- What built each release (mix, relx, distillery or unknown), detected from its start script and layout at
-- upload; it picks the default command names. NULL for releases uploaded before: berth detects those at start.
ALTER TABLE releases ADD COLUMN kind TEXT;
