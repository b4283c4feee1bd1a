-- Orders and patients change (issue 17): the exam keeps every item of its order, knows its films,
-- and records when its order moved to another patient (domain/patients.py says what follows when).

ALTER TABLE exam ADD COLUMN items jsonb NOT NULL DEFAULT '[]'::jsonb;   -- every exam item of the order
ALTER TABLE exam ADD COLUMN purpose text;

-- Films the print SCP matched to the exam (film.matched), off again on film.unmatched. Keyed by
-- accession so a film that arrives before its order is kept; event_at orders a match and an unmatch
-- of the same film that arrive out of order.
CREATE TABLE exam_film (
    accession_number text NOT NULL,
    film_id          text NOT NULL,
    state            text NOT NULL CHECK (state IN ('matched', 'unmatched')),
    method           text,
    confidence       double precision,
    matched_by       text,
    reason           text,                       -- why it was unmatched
    event_at         timestamptz NOT NULL,       -- the event's time: an older event never wins
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (accession_number, film_id)
);
CREATE INDEX exam_film_film_idx ON exam_film (film_id);

-- The order of an exam now names another patient than the exam showed (an unmerge, or a re-assignment
-- in registration). 'applied': the exam and its unsigned report followed; 'needs-amendment': the report
-- was signed, so it stays as signed until a radiologist amends it; 'resolved': no longer needed.
CREATE TABLE exam_patient_change (
    id               bigserial PRIMARY KEY,
    accession_number text NOT NULL,
    report_id        text,
    report_state     text,
    signed_version   integer,
    from_patient     jsonb NOT NULL,
    to_patient       jsonb NOT NULL,
    order_version    integer,
    reason           text,
    status           text NOT NULL CHECK (status IN ('applied', 'needs-amendment', 'resolved')),
    resolution       text,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz
);
CREATE INDEX exam_patient_change_acc_idx ON exam_patient_change (accession_number);
CREATE INDEX exam_patient_change_pending_idx ON exam_patient_change (accession_number)
    WHERE status = 'needs-amendment';
