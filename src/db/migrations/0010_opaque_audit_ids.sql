-- Audit event ids were one sequence for every team, so a team could count the gaps other teams'
-- activity left between its own events. The sequence stays, as `seq`, for ordering only; the id
-- a team sees (and pages by) is random.
ALTER TABLE audit_events RENAME COLUMN id TO seq;
ALTER TABLE audit_events ADD COLUMN id text;
UPDATE audit_events SET id = 'aud_' || replace(gen_random_uuid()::text, '-', '');
ALTER TABLE audit_events ALTER COLUMN id SET NOT NULL;
ALTER TABLE audit_events ALTER COLUMN id SET DEFAULT 'aud_' || replace(gen_random_uuid()::text, '-', '');
CREATE UNIQUE INDEX audit_events_id_idx ON audit_events (id);
