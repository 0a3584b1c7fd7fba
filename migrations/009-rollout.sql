-- The fleet rollout a deployment belongs to (`berth fleet deploy` tags every host's deployment with it), so a
-- halted or interrupted rollout can be read back from the agents alone. NULL for single-host deployments.
ALTER TABLE deployments ADD COLUMN rollout TEXT;
CREATE INDEX deployments_by_rollout ON deployments(app, rollout) WHERE rollout IS NOT NULL;
