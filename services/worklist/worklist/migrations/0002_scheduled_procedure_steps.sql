-- Scheduled procedure steps (PS3.4 Annex K) and the MPPS instances that perform them (Annex F).
--
-- Text is stored decoded (UTF-8); person names are kept whole (`patient_name`, a DICOM PN value)
-- and as three match forms, one per component group, upper-cased, which C-FIND compares against.
-- Times are the center's wall time (`timestamp` without zone) because DICOM dates carry no zone.

-- Scheduled Procedure Step IDs are SH (16 characters at most): "S" and nine digits.
CREATE SEQUENCE sps_number;

CREATE TABLE scheduled_procedure_steps (
    id                      bigserial PRIMARY KEY,
    sps_id                  text NOT NULL UNIQUE           -- (0040,0009), SH
                            DEFAULT ('S' || lpad(nextval('sps_number')::text, 9, '0')),
    accession_number        text NOT NULL,                 -- (0008,0050)
    requested_procedure_id  text NOT NULL DEFAULT '',      -- (0040,1001)
    study_instance_uid      text NOT NULL DEFAULT '',      -- (0020,000D)
    order_id                text,
    appointment_id          text,
    source                  text NOT NULL CHECK (source IN ('order', 'appointment', 'import')),
    status                  text NOT NULL DEFAULT 'scheduled'
                            CHECK (status IN ('scheduled', 'in_progress', 'completed', 'discontinued', 'cancelled')),
    patient_id              text NOT NULL,                 -- (0010,0020)
    issuer_of_patient_id    text NOT NULL DEFAULT '',
    empi_id                 text,
    patient_name            text NOT NULL DEFAULT '',      -- (0010,0010) as a PN value
    pn_alpha                text NOT NULL DEFAULT '',
    pn_ideo                 text NOT NULL DEFAULT '',
    pn_phon                 text NOT NULL DEFAULT '',
    birth_date              date,
    sex                     text NOT NULL DEFAULT '',
    modality                text NOT NULL DEFAULT '',      -- (0008,0060)
    station_ae_title        text NOT NULL DEFAULT '',      -- (0040,0001)
    station_name            text NOT NULL DEFAULT '',      -- (0040,0010)
    location                text NOT NULL DEFAULT '',      -- (0040,0011) the room's name
    room_id                 text,
    start_at                timestamp,                     -- (0040,0002) + (0040,0003)
    end_at                  timestamp,
    performing_physician    text NOT NULL DEFAULT '',      -- (0040,0006) PN
    pp_alpha                text NOT NULL DEFAULT '',
    pp_ideo                 text NOT NULL DEFAULT '',
    pp_phon                 text NOT NULL DEFAULT '',
    description             text NOT NULL DEFAULT '',      -- (0040,0007)
    protocol_code           text NOT NULL DEFAULT '',      -- (0040,0008) code value, our exam code
    requested_procedure_description text NOT NULL DEFAULT '',
    priority                text NOT NULL DEFAULT 'routine',
    referring_physician     text NOT NULL DEFAULT '',
    requesting_service      text NOT NULL DEFAULT '',
    admission_id            text NOT NULL DEFAULT '',
    patient_class           text NOT NULL DEFAULT '',
    current_location        text NOT NULL DEFAULT '',      -- ward / bed
    reason                  text NOT NULL DEFAULT '',      -- clinical diagnosis / purpose
    history                 text NOT NULL DEFAULT '',
    medical_alerts          text NOT NULL DEFAULT '',      -- special conditions (standard 6.1.7)
    body_part               text NOT NULL DEFAULT '',
    laterality              text NOT NULL DEFAULT '',
    contrast                boolean NOT NULL DEFAULT false,
    arrived_at              timestamptz,
    mpps_uid                text,
    started_at              timestamptz,
    completed_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- One step per exam item of an order; an appointment for the item finds it by these two.
CREATE UNIQUE INDEX sps_accession_protocol ON scheduled_procedure_steps (accession_number, protocol_code);

-- The modality's everyday query: its AE title (or modality) and today.
CREATE INDEX sps_station_start ON scheduled_procedure_steps (station_ae_title text_pattern_ops, start_at);
CREATE INDEX sps_modality_start ON scheduled_procedure_steps (modality text_pattern_ops, start_at);
CREATE INDEX sps_start ON scheduled_procedure_steps (start_at);
CREATE INDEX sps_room_start ON scheduled_procedure_steps (room_id, start_at);
-- Identifiers and names, exact or with a leading literal before a wildcard (text_pattern_ops
-- serves both = and LIKE 'abc%').
CREATE INDEX sps_patient_id ON scheduled_procedure_steps (patient_id text_pattern_ops);
CREATE INDEX sps_accession ON scheduled_procedure_steps (accession_number text_pattern_ops);
CREATE INDEX sps_requested_procedure ON scheduled_procedure_steps (requested_procedure_id text_pattern_ops);
CREATE INDEX sps_pn_alpha ON scheduled_procedure_steps (pn_alpha text_pattern_ops);
CREATE INDEX sps_pn_ideo ON scheduled_procedure_steps (pn_ideo text_pattern_ops);
CREATE INDEX sps_pn_phon ON scheduled_procedure_steps (pn_phon text_pattern_ops);
CREATE INDEX sps_order ON scheduled_procedure_steps (order_id);
CREATE INDEX sps_appointment ON scheduled_procedure_steps (appointment_id);
CREATE INDEX sps_mpps ON scheduled_procedure_steps (mpps_uid) WHERE mpps_uid IS NOT NULL;

-- Modality Performed Procedure Step instances (N-CREATE / N-SET), with their attributes as DICOM JSON.
CREATE TABLE performed_procedure_steps (
    sop_instance_uid   text PRIMARY KEY,
    status             text NOT NULL CHECK (status IN ('IN PROGRESS', 'COMPLETED', 'DISCONTINUED')),
    calling_ae_title   text NOT NULL DEFAULT '',
    station_ae_title   text NOT NULL DEFAULT '',
    modality           text NOT NULL DEFAULT '',
    pps_id             text NOT NULL DEFAULT '',
    accession_numbers  text[] NOT NULL DEFAULT '{}',
    study_instance_uids text[] NOT NULL DEFAULT '{}',
    step_ids           bigint[] NOT NULL DEFAULT '{}',   -- scheduled_procedure_steps performed
    attributes         jsonb NOT NULL,
    started_at         timestamptz,
    ended_at           timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
