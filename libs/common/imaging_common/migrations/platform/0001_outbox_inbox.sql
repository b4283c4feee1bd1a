-- Transactional outbox and idempotent inbox, present in EVERY service schema.
-- Applied with search_path set to the service's schema: names are unqualified on purpose.

-- Events written in the same transaction as the state change they announce; the relay
-- publishes them in `seq` order and stamps `published_at` only after the broker confirmed.
CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    type         text NOT NULL,
    envelope     jsonb NOT NULL,          -- the whole CloudEvents envelope, as published
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,   -- failed publish attempts (broker away, nack)
    last_error   text
);
-- The relay only ever looks for what is still to publish.
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wake the relay at commit time (NOTIFY is transactional) instead of waiting for its next poll.
-- One channel for every schema; the payload names the schema so each relay wakes for its own.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('imaging_outbox', TG_TABLE_SCHEMA);
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Event ids this service has applied; inserted in the handler's transaction, so a redelivered
-- event finds its id here and is skipped.
CREATE TABLE inbox (
    event_id     text PRIMARY KEY,
    type         text NOT NULL,
    source       text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received_at ON inbox (received_at);
