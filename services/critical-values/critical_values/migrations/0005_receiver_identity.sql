-- Identities kept apart (acknowledgements, times, deliveries).
--
-- Who a receiver is when it answers: an acknowledgement is resolved only among the notifications
-- sent to the receiver(s) it comes from, so two clinician systems that both number their
-- Communication/Task ids from 1 never close each other's patients' values.
ALTER TABLE receiver
    -- MSH-3 of the HL7 application ACKs it sends to our port; NULL = its receiver_id (our MSH-5 to it)
    ADD COLUMN ack_application text,
    -- MSH-4 of those ACKs; NULL = any facility
    ADD COLUMN ack_facility    text,
    -- peer addresses its ACKs come from; empty = any address
    ADD COLUMN ack_hosts       text[] NOT NULL DEFAULT '{}',
    -- username of the service account it acknowledges with over FHIR; NULL = its receiver_id
    ADD COLUMN fhir_client     text;
CREATE INDEX receiver_ack_application ON receiver ((coalesce(ack_application, receiver_id)));
CREATE INDEX receiver_fhir_client ON receiver ((coalesce(fhir_client, receiver_id)));

-- The receiver's ids are unique only within that receiver.
DROP INDEX IF EXISTS notification_task;
CREATE INDEX notification_receiver_task ON notification (receiver_id, task_id) WHERE task_id IS NOT NULL;
CREATE INDEX notification_receiver_remote ON notification (receiver_id, remote_id) WHERE remote_id IS NOT NULL;

-- A time a peer claims is evidence; the time we received it is the record: acknowledged_at is
-- when the acknowledgement reached us (deadlines, 10-minute statistics), this is what it said.
ALTER TABLE critical_value ADD COLUMN acknowledged_claimed_at timestamptz;

-- Delivery no longer gives up: after the retry budget it goes on at a slower pace until the
-- receiver accepts or the value closes. Open values given up on before are picked up again.
UPDATE notification SET status = 'pending', next_attempt_at = now(),
       last_error = coalesce(last_error, '') || ' (retrying on the slow schedule)'
 WHERE status = 'failed'
   AND critical_id IN (SELECT critical_id FROM critical_value WHERE closed_at IS NULL);
