-- EMPI tables, created in the schema of the service that holds the index (registration).
-- imaging_common.empi.store reads and writes them. A service holding the index lists this folder
-- (imaging_common.empi.MIGRATIONS) in its ServiceSpec.library_migrations, so it is migrated as its own
-- component ("empi") in that service's schema, versioned apart from the service's own migrations.
CREATE SEQUENCE empi_patient_seq;

-- One row per person: the golden record (survivorship.py) and what became of the person.
CREATE TABLE empi_person (
    empi_id      text PRIMARY KEY,              -- enterprise ID, never reused (ULID-like, time ordered)
    patient_id   text NOT NULL UNIQUE,          -- PACS PatientID (0010,0020)
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'merged')),
    merged_into  text REFERENCES empi_person (empi_id),
    name         text NOT NULL,
    name_latin   text,
    name_key     text NOT NULL DEFAULT '',      -- toneless pinyin, for search by pinyin
    birth_date   date,
    sex          text NOT NULL DEFAULT 'U' CHECK (sex IN ('M', 'F', 'O', 'U')),
    phone        text,
    address      text,
    postcode     text,
    id_type      text,
    id_number    text,
    verified     boolean NOT NULL DEFAULT false,
    provenance   jsonb NOT NULL DEFAULT '{}',   -- golden field -> source record id
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX empi_person_name ON empi_person (name) WHERE status = 'active';
CREATE INDEX empi_person_name_key ON empi_person (name_key text_pattern_ops) WHERE status = 'active';
CREATE INDEX empi_person_phone ON empi_person (phone) WHERE status = 'active';

-- Every registration, HIS message or imported row that describes a person, as it arrived.
CREATE TABLE empi_source_record (
    id           uuid PRIMARY KEY,
    empi_id      text NOT NULL REFERENCES empi_person (empi_id),
    source       text NOT NULL CHECK (source IN ('verified', 'registration', 'his', 'batch')),
    source_key   text,                          -- e.g. HIS patient ID, HL7 message control ID
    name         text,
    birth_date   date,
    sex          text,
    phone        text,
    address      text,
    postcode     text,
    identifiers  jsonb NOT NULL DEFAULT '[]',   -- [{"type","value","valid"}]
    actor        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX empi_source_record_person ON empi_source_record (empi_id);

CREATE TABLE empi_identifier (
    source_record_id uuid NOT NULL REFERENCES empi_source_record (id) ON DELETE CASCADE,
    empi_id      text NOT NULL REFERENCES empi_person (empi_id),
    type         text NOT NULL,
    value        text NOT NULL,
    valid        boolean NOT NULL DEFAULT true,
    PRIMARY KEY (source_record_id, type, value)
);
CREATE INDEX empi_identifier_lookup ON empi_identifier (type, value);
CREATE INDEX empi_identifier_value ON empi_identifier (value);

-- Blocking keys (blocking.py) of each source record: candidates are found by key equality.
CREATE TABLE empi_block_key (
    key              text NOT NULL,
    source_record_id uuid NOT NULL REFERENCES empi_source_record (id) ON DELETE CASCADE,
    PRIMARY KEY (key, source_record_id)
);

-- Possible duplicates for a person to decide (the review band).
CREATE TABLE empi_review (
    id           uuid PRIMARY KEY,
    left_empi    text NOT NULL REFERENCES empi_person (empi_id),
    right_empi   text NOT NULL REFERENCES empi_person (empi_id),
    weight       double precision NOT NULL,
    explanation  jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'merged', 'distinct', 'obsolete')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    resolved_by  text,
    CHECK (left_empi <> right_empi)
);
CREATE UNIQUE INDEX empi_review_open_pair ON empi_review (LEAST(left_empi, right_empi), GREATEST(left_empi, right_empi))
    WHERE status = 'open';

-- Pairs a person declared distinct: never proposed again (twins stay apart).
CREATE TABLE empi_distinct (
    a text NOT NULL REFERENCES empi_person (empi_id),
    b text NOT NULL REFERENCES empi_person (empi_id),
    decided_by text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (a, b),
    CHECK (a < b)
);

-- Full history of identity decisions: register, link, update, merge, unmerge, review.
CREATE TABLE empi_history (
    id         bigserial PRIMARY KEY,
    empi_id    text NOT NULL,
    action     text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}',
    actor      text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX empi_history_person ON empi_history (empi_id, id);
