-- How each order's exam went, from the other services' events (appointment.booked/rescheduled,
-- exam.started, exam.completed): only ever forward, scheduled < in-progress < discontinued < completed.
ALTER TABLE exam_order ADD COLUMN exam_status text
    CHECK (exam_status IN ('scheduled', 'in-progress', 'discontinued', 'completed'));
ALTER TABLE exam_order ADD COLUMN exam_status_at timestamptz;
ALTER TABLE exam_order ADD COLUMN scheduled_start timestamptz;

-- Where order status updates go (IMAGING_HIS_STATUS_HOST/PORT): written by the service at start, empty
-- when unset, so the event handlers queue messages only while a HIS is configured.
CREATE TABLE his_status_endpoint (
    id                    integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    host                  text NOT NULL,
    port                  integer NOT NULL,
    sending_application   text NOT NULL,         -- MSH-3/MSH-4 of ours
    sending_facility      text NOT NULL,
    receiving_application text NOT NULL,         -- MSH-5/MSH-6: the HIS
    receiving_facility    text NOT NULL,
    charset               text NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Order status updates to the HIS (ORM^O01, ORC-1 SC with ORC-5, or OC), sent in order per order:
-- only the oldest unfinished message of an order is claimable. pending -> sending (leased) -> sent, or
-- back to pending with backoff (AE, no answer), or refused (AR/CR: never retried, kept with the answer).
CREATE TABLE his_status_message (
    id              bigserial PRIMARY KEY,
    order_id        uuid NOT NULL REFERENCES exam_order (order_id),
    order_control   text NOT NULL CHECK (order_control IN ('SC', 'OC')),
    order_status    text NOT NULL,                 -- ORC-5: SC, IP, CM, DC, CA
    control_id      text NOT NULL UNIQUE,          -- MSH-10, the same on every attempt
    payload         text NOT NULL,                 -- the ER7 message
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'refused')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    ack_code        text,                          -- MSA-1 of the last answer
    ack             text,                          -- the last answer, as received
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX his_status_message_due ON his_status_message (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX his_status_message_order ON his_status_message (order_id, id);

CREATE OR REPLACE FUNCTION notify_his_status() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('registration_his_status', current_schema());
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER his_status_message_notify AFTER INSERT ON his_status_message
    FOR EACH STATEMENT EXECUTE FUNCTION notify_his_status();
