-- Studies the platform told us about (order.created, exam.*, patient.*): what films match to.
CREATE TABLE studies (
    study_instance_uid text PRIMARY KEY,
    accession_number   text NOT NULL UNIQUE,
    order_id           text,
    empi_id            text NOT NULL,
    patient_id         text NOT NULL,
    patient_name       text NOT NULL,
    patient            jsonb NOT NULL,           -- PatientRef as last received
    modality           text,
    exam_name          text,
    status             text NOT NULL DEFAULT 'ordered',  -- ordered, started, completed, discontinued, cancelled
    ordered_at         timestamptz,
    started_at         timestamptz,
    completed_at       timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX studies_patient_id ON studies (patient_id);
CREATE INDEX studies_empi_id ON studies (empi_id);
CREATE INDEX studies_activity ON studies ((coalesce(completed_at, started_at, ordered_at)));

-- One row per print association's film session.
CREATE TABLE film_sessions (
    id                 uuid PRIMARY KEY,
    sop_instance_uid   text NOT NULL,
    calling_ae_title   text NOT NULL,
    called_ae_title    text NOT NULL,
    peer               text NOT NULL,
    attributes         jsonb NOT NULL,             -- copies, priority, medium, destination, label, owner
    study_uids         text[] NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- One row per printed sheet.
CREATE TABLE films (
    id                 uuid PRIMARY KEY,
    session_id         uuid REFERENCES film_sessions (id),
    film_box_uid       text NOT NULL,
    print_job_uid      text NOT NULL,
    status             text NOT NULL DEFAULT 'spooled',   -- spooled, stored, failed
    failure            text,
    printed_at         timestamptz NOT NULL,
    calling_ae_title   text NOT NULL,
    copies             integer NOT NULL DEFAULT 1,
    priority           text,
    medium_type        text,
    destination        text,
    film_size          text,
    orientation        text,
    display_format     text,
    session_label      text,
    owner_id           text,
    image_count        integer NOT NULL,
    collated           boolean NOT NULL DEFAULT false,
    sent_study_uids    text[] NOT NULL DEFAULT '{}',      -- Study Instance UIDs the modality sent
    spool_key          text,
    dicom_key          text,
    png_key            text,
    sop_instance_uid   text,
    width              integer,
    height             integer,
    -- matching (WS/T 597 5.4): matched, review (staff decide), pending (not tried yet)
    match_status       text NOT NULL DEFAULT 'pending',
    match_method       text,                              -- study-uid, ocr, manual
    match_confidence   real,
    match_detail       jsonb,
    study_instance_uid text,
    accession_number   text,
    patient_id         text,
    empi_id            text,
    patient_name       text,
    matched_by         text,
    matched_at         timestamptz,
    handed_over_at     timestamptz,
    handed_over_by     text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX films_status ON films (status) WHERE status = 'spooled';
CREATE INDEX films_review ON films (match_status) WHERE match_status <> 'matched';
CREATE INDEX films_patient ON films (patient_id);
CREATE INDEX films_empi ON films (empi_id);
CREATE INDEX films_accession ON films (accession_number);
CREATE INDEX films_study ON films (study_instance_uid);

-- Cloud-film share links (regional imaging-cloud spec: validity period, identity check).
CREATE TABLE film_shares (
    id                 uuid PRIMARY KEY,
    token_sha256       text NOT NULL UNIQUE,   -- the token itself is only in the link
    accession_number   text NOT NULL,
    empi_id            text NOT NULL,
    check_kind         text NOT NULL,          -- phone-last4, id-last4
    check_sha256       text NOT NULL,          -- of the expected answer, salted with the token id
    expires_at         timestamptz NOT NULL,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    failed_attempts    integer NOT NULL DEFAULT 0,
    revoked_at         timestamptz
);
