-- Per-subject versions (imaging_common.events.versions), present in EVERY service schema.

-- Producer side: the last version issued per subject ("order:<id>", "appointment:<id>"), taken in
-- the transaction that publishes the event, so versions follow commit order.
CREATE TABLE published_versions (
    subject_key  text PRIMARY KEY,
    version      bigint NOT NULL
);

-- Consumer side: the newest version applied per subject; an event not newer for any of its
-- subjects is acknowledged as stale without reaching its handler.
CREATE TABLE subject_versions (
    subject_key  text PRIMARY KEY,
    version      bigint NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now()
);
