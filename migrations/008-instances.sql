-- Placeholder on the fleet branch only: 008 belongs to the zero-downtime branch (the same file name there),
-- and the migrator needs an unbroken sequence for 009 to apply. On merge, take that branch's file.
SELECT 1;
