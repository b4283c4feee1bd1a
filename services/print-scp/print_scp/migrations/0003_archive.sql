-- Sending matched films to the configured PACS (C-STORE), one status per film.
-- archive_status: NULL (never queued: no archive, or not matched), pending (to send at archive_next_at),
-- sent, failed (gave up, or the PACS refused it), cancelled (unmatched before it was sent).
ALTER TABLE films
    ADD COLUMN archive_status          text CHECK (archive_status IN ('pending', 'sent', 'failed', 'cancelled')),
    ADD COLUMN archive_attempts        integer NOT NULL DEFAULT 0,
    ADD COLUMN archive_next_at         timestamptz,
    ADD COLUMN archive_error           text,
    ADD COLUMN archived_at             timestamptz,
    ADD COLUMN archive_response_status integer;   -- DIMSE status of the PACS's last answer, e.g. 0 or 0xA700

-- What the senders poll: only the pending rows, by due time.
CREATE INDEX films_archive_due ON films (archive_next_at) WHERE archive_status = 'pending';
