-- Live worklist pages: every change of the scheduled steps (events, MPPS, imports, cancellations) tells each
-- replica's listeners once per statement; the notice carries nothing of the patient (pages reload the list).
CREATE OR REPLACE FUNCTION notify_worklist_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('worklist_changed', '');
    RETURN NULL;
END $$;

CREATE TRIGGER worklist_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON scheduled_procedure_steps
    FOR EACH STATEMENT EXECUTE FUNCTION notify_worklist_changed();
