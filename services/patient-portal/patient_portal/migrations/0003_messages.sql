-- Messages to patients (SMS): one row per message, written in the transaction of the event that caused it,
-- sent by adapters/message_worker.py. `dedup_key` makes the same cause queue one message only.
CREATE TABLE message (
    message_id          bigserial PRIMARY KEY,
    dedup_key           text NOT NULL UNIQUE,
    kind                text NOT NULL,          -- domain/messages.TEMPLATES
    phone               text NOT NULL,
    empi_id             text NOT NULL,
    accession_number    text,
    body                text NOT NULL,
    -- queued -> sent | failed; opted-out (never sent); held in quiet hours by next_attempt_at
    status              text NOT NULL DEFAULT 'queued',
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL,
    lease_until         timestamptz,
    provider_message_id text,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz
);
CREATE INDEX message_due ON message (next_attempt_at) WHERE status = 'queued';
CREATE INDEX message_patient ON message (phone, created_at DESC);

-- Phones whose owner asked for no messages (critical-result notices excepted, where the department wants them).
CREATE TABLE opt_out (
    phone     text PRIMARY KEY,
    opted_at  timestamptz NOT NULL DEFAULT now()
);
