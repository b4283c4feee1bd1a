-- Reporting: exams to report, templates, phrases, reports with versions, signatures, amendments,
-- critical findings, delivery receivers and the delivery queue (HL7 ORU over MLLP, FHIR REST).

-- Exams learnt from order.created / exam.completed: the radiologists' worklist.
CREATE TABLE exam (
    accession_number text PRIMARY KEY,
    order_id text,
    study_instance_uid text,
    empi_id text,
    patient_id text,
    patient jsonb NOT NULL DEFAULT '{}'::jsonb,   -- PatientRef as the events carry it
    patient_name text NOT NULL DEFAULT '',
    sex text NOT NULL DEFAULT 'U',
    modality text,
    body_part text,
    laterality text,                                -- L / R / B as ordered
    exam_code text,
    exam_name text,
    ordering_doctor text,
    ordering_doctor_id text,
    ordering_department text,
    ward text,
    clinical_diagnosis text,
    history text,
    priority text NOT NULL DEFAULT 'routine',
    ordered_at timestamptz,
    completed_at timestamptz,
    status text NOT NULL DEFAULT 'ordered',          -- ordered, completed, discontinued
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exam_status_idx ON exam (status, completed_at);
CREATE INDEX exam_empi_idx ON exam (empi_id);

-- Who reports: radiologists flagged as trainees, and AI systems calling through an API token,
-- may only draft (standard 7.1.1 (1)).
CREATE TABLE reporter (
    username text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('trainee', 'ai', 'radiologist')),
    display_name text,
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE template (
    id text PRIMARY KEY,
    name text NOT NULL,
    modality text,
    body_part text,
    source text NOT NULL DEFAULT 'native',          -- native, mrrt
    definition jsonb NOT NULL,                      -- sections and typed fields (domain/templates.py)
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE phrase (
    id bigserial PRIMARY KEY,
    owner text,                                     -- username; NULL = department phrase
    department text,
    modality text,
    section text NOT NULL DEFAULT 'findings',       -- findings, impression
    label text NOT NULL,
    text text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE report (
    id text PRIMARY KEY,
    accession_number text NOT NULL UNIQUE REFERENCES exam (accession_number),
    template_id text REFERENCES template (id),
    state text NOT NULL,
    version integer NOT NULL DEFAULT 0,             -- the current (latest) version
    signed_version integer,                         -- the version the current signature covers
    positive boolean,
    critical boolean NOT NULL DEFAULT false,
    amendment_count integer NOT NULL DEFAULT 0,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    preliminary_at timestamptz,
    preliminary_by text,
    final_at timestamptz,
    final_by text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX report_state_idx ON report (state);

-- Every save keeps a version (revision traces, standard 4.2.6).
CREATE TABLE report_version (
    report_id text NOT NULL REFERENCES report (id),
    version integer NOT NULL,
    state text NOT NULL,                            -- the state the report had after this save
    action text NOT NULL,
    content jsonb NOT NULL,                         -- {findings, impression, fields}
    saved_by text NOT NULL,
    saved_by_name text,
    saved_at timestamptz NOT NULL DEFAULT now(),
    note text,
    PRIMARY KEY (report_id, version)
);
CREATE INDEX report_version_fields_idx ON report_version USING gin ((content -> 'fields'));

-- Structured fields of each report's latest version, as rows: searchable and countable
-- (standard 7.1.2 (2)).
CREATE TABLE report_field (
    report_id text NOT NULL REFERENCES report (id),
    field_id text NOT NULL,
    value_text text,
    value_number double precision,
    unit text,
    code text,
    code_system text,
    PRIMARY KEY (report_id, field_id)
);
CREATE INDEX report_field_search_idx ON report_field (field_id, value_text);
CREATE INDEX report_field_code_idx ON report_field (code_system, code);

-- Per-user signing keys (Ed25519). The private key is kept encrypted (AES-GCM under the
-- service's signing secret) and never in a report row.
CREATE TABLE signing_key (
    key_id text PRIMARY KEY,
    user_id text NOT NULL,
    username text NOT NULL,
    public_key text NOT NULL,                       -- PEM
    private_key_enc bytea NOT NULL,                 -- nonce || AES-GCM ciphertext of the PKCS8 DER
    status text NOT NULL DEFAULT 'active',          -- pending (awaiting approval), active, revoked
    created_at timestamptz NOT NULL DEFAULT now(),
    approved_by text,                               -- standard 10.2.4 (1): approved by the administration
    approved_at timestamptz,
    revoked_at timestamptz
);
CREATE UNIQUE INDEX signing_key_active_idx ON signing_key (user_id) WHERE status IN ('active', 'pending');

CREATE TABLE signature (
    id bigserial PRIMARY KEY,
    report_id text NOT NULL REFERENCES report (id),
    version integer NOT NULL,
    kind text NOT NULL,                             -- preliminary, final, amended, corrected
    signer_id text NOT NULL,
    signer_name text NOT NULL,
    signed_at timestamptz NOT NULL,
    content_sha256 text NOT NULL,
    key_id text NOT NULL REFERENCES signing_key (key_id),
    signature text NOT NULL                         -- base64 Ed25519 over the signed statement
);
CREATE INDEX signature_report_idx ON signature (report_id, version);

-- Every signing and verification (standard 10.2.4 (2)).
CREATE TABLE signature_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    report_id text NOT NULL,
    version integer,
    actor text NOT NULL,
    action text NOT NULL,                           -- sign, verify
    outcome text NOT NULL,                          -- signed, valid, tampered, bad-signature, unsigned
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX signature_log_report_idx ON signature_log (report_id, at);

CREATE TABLE amendment (
    id bigserial PRIMARY KEY,
    report_id text NOT NULL REFERENCES report (id),
    kind text NOT NULL CHECK (kind IN ('amended', 'corrected')),
    reason text NOT NULL,
    status text NOT NULL DEFAULT 'requested',       -- requested, approved, rejected, completed
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    reviewed_by text,
    reviewed_at timestamptz,
    review_note text,
    previous_version integer NOT NULL,
    new_version integer,
    completed_at timestamptz
);
CREATE INDEX amendment_report_idx ON amendment (report_id);

CREATE TABLE consultation_note (
    id bigserial PRIMARY KEY,
    report_id text NOT NULL REFERENCES report (id),
    author text NOT NULL,
    note text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE critical_finding (
    critical_id text PRIMARY KEY,
    report_id text NOT NULL REFERENCES report (id),
    finding text NOT NULL,
    item_code text,
    source text NOT NULL,
    raised_by text NOT NULL,
    raised_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (report_id, finding)
);

-- Where reports go: HL7 v2 receivers over MLLP and FHIR R4 endpoints.
CREATE TABLE receiver (
    id text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('hl7', 'fhir')),
    name text NOT NULL,
    host text,                                      -- hl7
    port integer,                                   -- hl7
    url text,                                       -- fhir base URL
    charset text NOT NULL DEFAULT 'utf-8',          -- hl7: utf-8 or gb18030
    receiving_application text NOT NULL DEFAULT 'HIS',
    receiving_facility text NOT NULL DEFAULT 'HOSPITAL',
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The delivery queue: one row per (report version event, receiver), sent in order per report
-- and receiver, retried with backoff until acknowledged, then 'dead' for a person to look at.
CREATE TABLE delivery (
    id bigserial PRIMARY KEY,
    report_id text NOT NULL REFERENCES report (id),
    version integer NOT NULL,
    receiver_id text NOT NULL REFERENCES receiver (id),
    result_status text NOT NULL,                    -- OBR-25: P, F, C, X, W
    payload text NOT NULL,                          -- ER7 text or FHIR Bundle JSON
    status text NOT NULL DEFAULT 'pending',         -- pending, sending, delivered, dead
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    last_error text,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    ack text
);
CREATE INDEX delivery_due_idx ON delivery (receiver_id, next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX delivery_report_idx ON delivery (report_id, receiver_id, id);
CREATE INDEX delivery_status_idx ON delivery (status);

CREATE OR REPLACE FUNCTION notify_delivery() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('reporting_delivery', current_schema());
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER delivery_notify AFTER INSERT ON delivery
    FOR EACH STATEMENT EXECUTE FUNCTION notify_delivery();
