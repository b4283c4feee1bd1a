-- The patient portal's read model: patients and their exams as the other services publish them
-- (events), and the one-time sign-in codes.

CREATE TABLE patient (
    empi_id     text PRIMARY KEY,
    phone       text,                      -- digits only (domain/phones.normalize); the sign-in key
    patient     jsonb NOT NULL,            -- the PatientRef copy (merge_patient: never blanked)
    merged_into text,                      -- set when the EMPI folded this patient into another
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patient_phone ON patient (phone) WHERE merged_into IS NULL;

CREATE TABLE exam (
    accession_number  text PRIMARY KEY,
    order_id          text NOT NULL,
    empi_id           text NOT NULL,
    exam_name         text NOT NULL,
    modality          text NOT NULL,
    ordered_at        timestamptz NOT NULL,
    status            text NOT NULL,       -- domain/exams.STATUS_RANK
    appointment_id    text,
    appointment_start timestamptz,
    room_name         text,
    queue_number      text,
    arrived_at        timestamptz,
    completed_at      timestamptz,
    report_id         text,
    report_version    integer,
    impression        text,
    reported_at       timestamptz,
    received_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exam_patient ON exam (empi_id);

-- Sign-in codes: only an HMAC of (phone, code) is kept; a code is used once, within its time,
-- and voided after too many wrong tries.
CREATE TABLE signin_code (
    code_id    bigserial PRIMARY KEY,
    phone      text NOT NULL,
    code_hash  text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    failures   integer NOT NULL DEFAULT 0,
    used_at    timestamptz
);
CREATE INDEX signin_code_phone ON signin_code (phone, created_at DESC);
