-- Electronic application forms (smart-imaging standard 5.1.1) and identity checks (6.1.3).
CREATE SEQUENCE accession_seq;

CREATE TABLE exam_order (
    order_id               uuid PRIMARY KEY,
    accession_number       text NOT NULL UNIQUE,
    requested_procedure_id text NOT NULL,
    study_instance_uid     text NOT NULL UNIQUE,
    empi_id                text NOT NULL REFERENCES empi_person (empi_id),
    source                 text NOT NULL DEFAULT 'desk' CHECK (source IN ('desk', 'his')),
    placer_order_number    text,                       -- the HIS order number (ORC-2)
    patient_class          text NOT NULL DEFAULT 'outpatient'
                           CHECK (patient_class IN ('outpatient', 'inpatient', 'emergency', 'physical-exam')),
    visit_number           text,
    ward                   text,
    bed                    text,
    ordering_doctor        text,
    ordering_doctor_id     text,
    ordering_department    text,
    clinical_diagnosis     text,
    history                text,
    purpose                text,
    items                  jsonb NOT NULL,
    special                jsonb NOT NULL DEFAULT '{}',
    priority               text NOT NULL DEFAULT 'routine' CHECK (priority IN ('routine', 'urgent', 'stat')),
    status                 text NOT NULL DEFAULT 'ordered' CHECK (status IN ('ordered', 'cancelled')),
    created_by             text NOT NULL,
    ordered_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, placer_order_number)
);
CREATE INDEX exam_order_patient ON exam_order (empi_id, ordered_at DESC);

CREATE TABLE identity_verification (
    id              uuid PRIMARY KEY,
    empi_id         text NOT NULL REFERENCES empi_person (empi_id),
    method          text NOT NULL CHECK (method IN ('id-card-reader', 'document-seen', 'face', 'verbal')),
    document_type   text,
    document_masked text,                              -- never the full number
    verified_by     text NOT NULL,
    verified_at     timestamptz NOT NULL DEFAULT now(),
    note            text
);
CREATE INDEX identity_verification_patient ON identity_verification (empi_id);
