-- The catalogue code of what made a deployment fail (e.g. MIGRATION_REQUIRED), next to its reason sentence.
ALTER TABLE deployments ADD COLUMN reason_code TEXT;
