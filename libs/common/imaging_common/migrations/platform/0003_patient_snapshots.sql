-- The newest snapshot of each patient this service has seen, in a patient event or inside an event
-- about something else (imaging_common.events.versions): an older or unversioned snapshot arriving
-- later is replaced by it before the handler runs; a merged patient's row holds the survivor.
CREATE TABLE patient_snapshots (
    empi_id   text PRIMARY KEY,
    version   bigint NOT NULL,
    snapshot  jsonb NOT NULL,
    seen_at   timestamptz NOT NULL DEFAULT now()
);
