-- The statistics read model: one row per exam (accession number), filled from the events of every
-- service as they arrive (adapters/events.py). A field an event does not carry is kept, never blanked.
CREATE TABLE exam_fact (
    accession_number  text PRIMARY KEY,
    order_id          text,
    modality          text,
    exam_code         text,
    exam_name         text,
    room_id           text,
    room_name         text,
    campus            text,
    department        text,            -- the ordering department
    patient_class     text,            -- outpatient, inpatient, emergency, physical-exam
    priority          text,
    station_ae_title  text,            -- the modality that performed it (MPPS)
    empi_id           text,
    patient_name      text,            -- shown masked on the wall screen, in full to the department head
    ordered_at        timestamptz,
    booked_at         timestamptz,     -- when the first appointment was made
    appointment_start timestamptz,
    arrived_at        timestamptz,
    started_at        timestamptz,
    completed_at      timestamptz,
    exam_status       text,            -- completed, discontinued (MPPS)
    preliminary_at    timestamptz,
    preliminary_by    text,
    final_at          timestamptz,
    final_by          text,
    delivered_at      timestamptz,     -- the first film matched to the exam (handed to the patient)
    cancelled_at      timestamptz,
    no_show_at        timestamptz,
    positive          boolean,
    preliminary_kept  boolean,         -- the final impression kept the preliminary one (8.3.3)
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exam_fact_completed ON exam_fact (completed_at);
CREATE INDEX exam_fact_ordered ON exam_fact (ordered_at);
CREATE INDEX exam_fact_station ON exam_fact (station_ae_title, started_at);

-- Amendments and corrections of signed reports, one row per new version (counted, never summed twice).
CREATE TABLE amendment_fact (
    report_id         text NOT NULL,
    version           integer NOT NULL,
    accession_number  text NOT NULL,
    kind              text NOT NULL,
    signed_at         timestamptz NOT NULL,
    PRIMARY KEY (report_id, version)
);
CREATE INDEX amendment_fact_accession ON amendment_fact (accession_number);

CREATE TABLE critical_fact (
    critical_id       text PRIMARY KEY,
    accession_number  text NOT NULL,
    modality          text,
    department        text,
    raised_at         timestamptz,
    acknowledged_at   timestamptz,
    closed_at         timestamptz,
    outcome           text
);
CREATE INDEX critical_fact_raised ON critical_fact (raised_at);
