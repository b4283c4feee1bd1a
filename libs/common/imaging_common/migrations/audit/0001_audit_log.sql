-- Central security audit (smart-imaging standard 10.5): who, when, what, from where, outcome.
-- Append-only and hash-chained: row_hash = sha256(prev_hash || canonical JSON of the row), computed
-- by imaging_common.audit, so `python -m imaging_common.audit verify` names the first row that was
-- changed or removed. Applied with search_path = audit.
CREATE TABLE audit_log (
    seq          bigint PRIMARY KEY,          -- gapless: a missing number is a deleted row
    occurred_at  timestamptz NOT NULL,
    service      text NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,               -- login, read, create, update, delete, export, ...
    entity       text NOT NULL,               -- patient, order, staff_user, session, ...
    entity_id    text,
    patient_id   text,
    source_ip    text,
    outcome      text NOT NULL,               -- success, failure, denied, locked
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash    text NOT NULL,
    row_hash     text NOT NULL
);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);
CREATE INDEX audit_log_patient ON audit_log (patient_id, occurred_at) WHERE patient_id IS NOT NULL;
CREATE INDEX audit_log_actor ON audit_log (actor, occurred_at);

-- One row: where the chain starts (after a retention purge: the last purged row's seq and hash)
-- and where it ends (so removing the newest rows is noticed too).
CREATE TABLE audit_chain (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    anchor_seq   bigint NOT NULL DEFAULT 0,
    anchor_hash  text NOT NULL DEFAULT repeat('0', 64),
    head_seq     bigint NOT NULL DEFAULT 0,
    head_hash    text NOT NULL DEFAULT repeat('0', 64),
    purged_at    timestamptz,
    purged_rows  bigint NOT NULL DEFAULT 0
);
INSERT INTO audit_chain DEFAULT VALUES;

-- Rows are never changed; they are deleted only by the retention purge, which sets
-- imaging.audit_purge for its own transaction (and keeps the chain anchored).
CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('imaging.audit_purge', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit.audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
