-- Audit the application cannot rewrite (issue 18 item 6).
--
-- Two roles, created here when missing (cluster-wide, so shared by every database of the cluster):
--   imaging_audit_owner   owns the audit schema, its tables and functions; the only one that purges,
--                         and only rows older than the retention (checked here, in SQL);
--   imaging_audit_writer  what the application's login role is granted: SELECT on the tables and
--                         EXECUTE on audit.append(...), a SECURITY DEFINER function; no INSERT,
--                         UPDATE, DELETE or TRUNCATE, no ownership.
-- This migration must run as a role able to create roles and take the schema over: the superuser of
-- a development DATABASE_URL, or in production the administrator in IMAGING_AUDIT_OWNER_DATABASE_URL
-- (imaging_common.db.migrate_service picks the connection; see the README's audit section).
--
-- Rows from here on are chained with HMAC-SHA256 under a key kept outside the database
-- (IMAGING_AUDIT_HMAC_KEY[_FILE]); older rows stay verifiable by the plain SHA-256 rule up to the
-- switch point audit_chain.hmac_from_seq, whose row is the HMAC'd 'chain-upgrade' marker.
-- Roles an administrator made beforehand are used as they are (no CREATEROLE needed then).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'imaging_audit_owner') THEN
        BEGIN
            CREATE ROLE imaging_audit_owner NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- another database/replica made it
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'imaging_audit_writer') THEN
        BEGIN
            CREATE ROLE imaging_audit_writer NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
END $$;

ALTER TABLE audit_chain
    ADD COLUMN hmac_from_seq bigint,
    ADD COLUMN hmac_key_id text,
    ADD COLUMN chain_id uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN min_retention_days integer NOT NULL DEFAULT 180 CHECK (min_retention_days >= 180);
-- The switch point: the next row is the first keyed one (1 on a new database).
UPDATE audit_chain SET hmac_from_seq = head_seq + 1 WHERE id;
ALTER TABLE audit_chain ALTER COLUMN hmac_from_seq SET NOT NULL;

-- Deleting needs the owner role and rows older than the retention; nothing is ever updated or
-- truncated. (The former session flag imaging.audit_purge, which any session could set, is gone.)
CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' AND pg_has_role(current_user, 'imaging_audit_owner', 'USAGE')
       AND OLD.occurred_at < now() - make_interval(days => (SELECT min_retention_days FROM audit.audit_chain WHERE id)) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit.audit_log is append-only (% refused%)', TG_OP,
        CASE WHEN TG_OP = 'DELETE' THEN ': only the audit owner purges, and only rows older than the retention'
             ELSE '' END
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- The application's only way in. The caller computed row_hash (HMAC) under the chain's advisory lock
-- from the head it read; this checks it extends that head, and that the time is the database's own.
CREATE FUNCTION audit.append(
    p_seq bigint, p_occurred_at timestamptz, p_service text, p_actor text, p_action text, p_entity text,
    p_entity_id text, p_patient_id text, p_source_ip text, p_outcome text, p_detail jsonb,
    p_prev_hash text, p_row_hash text
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    chain audit.audit_chain;
BEGIN
    PERFORM pg_advisory_xact_lock(-6582765842895891227);  -- imaging_common.audit.LOCK_KEY
    SELECT * INTO chain FROM audit.audit_chain WHERE id FOR UPDATE;
    IF p_seq IS DISTINCT FROM chain.head_seq + 1 OR p_prev_hash IS DISTINCT FROM chain.head_hash THEN
        RAISE EXCEPTION 'audit append does not extend the chain (head %, row %)', chain.head_seq, p_seq
            USING ERRCODE = 'serialization_failure';
    END IF;
    IF p_row_hash IS NULL OR p_row_hash !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'audit append: row_hash must be 64 hex digits' USING ERRCODE = 'check_violation';
    END IF;
    IF p_occurred_at IS NULL OR p_occurred_at > clock_timestamp()
       OR p_occurred_at < clock_timestamp() - interval '10 minutes' THEN
        RAISE EXCEPTION 'audit append: occurred_at % is not the database''s current time', p_occurred_at
            USING ERRCODE = 'check_violation';
    END IF;
    IF p_seq = chain.hmac_from_seq THEN
        IF p_action IS DISTINCT FROM 'chain-upgrade' OR p_entity IS DISTINCT FROM 'audit_log' THEN
            RAISE EXCEPTION 'audit append: row % must be the chain-upgrade marker', p_seq
                USING ERRCODE = 'check_violation';
        END IF;
        UPDATE audit.audit_chain SET hmac_key_id = p_detail->>'key_id' WHERE id;
    END IF;
    INSERT INTO audit.audit_log (seq, occurred_at, service, actor, action, entity, entity_id, patient_id,
                                 source_ip, outcome, detail, prev_hash, row_hash)
    VALUES (p_seq, p_occurred_at, p_service, p_actor, p_action, p_entity, p_entity_id, p_patient_id,
            p_source_ip, p_outcome, coalesce(p_detail, '{}'::jsonb), p_prev_hash, p_row_hash);
    UPDATE audit.audit_chain SET head_seq = p_seq, head_hash = p_row_hash WHERE id;
END $$;

-- Retention, by the owner only: deletes the chain's prefix through p_last_seq when every row of it
-- is older than p_older_than and p_older_than is at least min_retention_days ago; re-anchors the chain.
-- The caller then records the purge (an HMAC'd row naming the new anchor), which `verify` requires.
CREATE FUNCTION audit.purge_through(p_last_seq bigint, p_older_than timestamptz) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    chain audit.audit_chain;
    newest timestamptz;
    anchor text;
    removed bigint;
BEGIN
    IF NOT pg_has_role(current_user, 'imaging_audit_owner', 'USAGE') THEN
        RAISE EXCEPTION 'only imaging_audit_owner purges the audit log' USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pg_advisory_xact_lock(-6582765842895891227);
    SELECT * INTO chain FROM audit.audit_chain WHERE id FOR UPDATE;
    IF p_older_than IS NULL OR p_older_than > now() - make_interval(days => chain.min_retention_days) THEN
        RAISE EXCEPTION 'audit rows younger than % days cannot be purged (asked: before %)',
            chain.min_retention_days, p_older_than USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_last_seq <= chain.anchor_seq THEN
        RETURN 0;
    END IF;
    IF p_last_seq > chain.head_seq THEN
        RAISE EXCEPTION 'audit purge past the head (% > %)', p_last_seq, chain.head_seq;
    END IF;
    SELECT max(occurred_at) INTO newest FROM audit.audit_log WHERE seq > chain.anchor_seq AND seq <= p_last_seq;
    IF newest >= p_older_than THEN
        RAISE EXCEPTION 'audit rows through % are not all older than %', p_last_seq, p_older_than
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT row_hash INTO anchor FROM audit.audit_log WHERE seq = p_last_seq;
    IF anchor IS NULL THEN
        RAISE EXCEPTION 'audit row % is missing: verify the chain first', p_last_seq;
    END IF;
    DELETE FROM audit.audit_log WHERE seq <= p_last_seq;
    GET DIAGNOSTICS removed = ROW_COUNT;
    UPDATE audit.audit_chain SET anchor_seq = p_last_seq, anchor_hash = anchor, purged_at = now(),
        purged_rows = purged_rows + removed WHERE id;
    RETURN removed;
END $$;

-- Ownership and privileges.
ALTER SCHEMA audit OWNER TO imaging_audit_owner;
ALTER TABLE audit_log OWNER TO imaging_audit_owner;
ALTER TABLE audit_chain OWNER TO imaging_audit_owner;
ALTER TABLE schema_migrations OWNER TO imaging_audit_owner;
ALTER FUNCTION audit.refuse_change() OWNER TO imaging_audit_owner;
ALTER FUNCTION audit.append(bigint, timestamptz, text, text, text, text, text, text, text, text, jsonb, text, text)
    OWNER TO imaging_audit_owner;
ALTER FUNCTION audit.purge_through(bigint, timestamptz) OWNER TO imaging_audit_owner;

REVOKE ALL ON SCHEMA audit FROM PUBLIC;
REVOKE ALL ON audit_log, audit_chain, schema_migrations FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.append(bigint, timestamptz, text, text, text, text, text, text, text, text, jsonb,
    text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.purge_through(bigint, timestamptz) FROM PUBLIC;

GRANT USAGE ON SCHEMA audit TO imaging_audit_writer;
GRANT SELECT ON audit_log, audit_chain, schema_migrations TO imaging_audit_writer;
GRANT EXECUTE ON FUNCTION audit.append(bigint, timestamptz, text, text, text, text, text, text, text, text, jsonb,
    text, text) TO imaging_audit_writer;
