-- Critical values (smart-imaging standard 7.1.3, 8.7): dictionary, receivers, rosters, the critical
-- values themselves, their notifications, timers, phone tasks and manual (fallback) records.

-- A dictionary version is immutable once published; every change publishes a new version, and every
-- critical value cites the version it was judged by (7.1.3 (2)).
CREATE TABLE dictionary_version (
    version       integer PRIMARY KEY,
    published_at  timestamptz NOT NULL DEFAULT now(),
    published_by  text NOT NULL,
    note          text
);

CREATE TABLE dictionary_item (
    version        integer NOT NULL REFERENCES dictionary_version(version),
    code           text NOT NULL,
    name           text NOT NULL,                 -- e.g. 张力性气胸
    name_en        text,                          -- e.g. tension pneumothorax
    modalities     text[] NOT NULL DEFAULT '{}',  -- DICOM modalities it applies to; empty = any
    category       smallint NOT NULL CHECK (category BETWEEN 1 AND 3),  -- RadLex actionable finding
    notify_minutes numeric NOT NULL CHECK (notify_minutes > 0),  -- raised -> clinician system accepted
    ack_minutes    numeric NOT NULL CHECK (ack_minutes > 0),     -- raised -> clinician acknowledged
    requires_senior_confirmation boolean NOT NULL DEFAULT false,
    active         boolean NOT NULL DEFAULT true,
    PRIMARY KEY (version, code)
);

-- What we learned from order.created: who ordered, for which ward and department.
CREATE TABLE order_info (
    accession_number     text PRIMARY KEY,
    order_id             text NOT NULL,
    patient              jsonb NOT NULL,
    patient_class        text,
    ordering_doctor_id   text,
    ordering_doctor      text,
    ordering_department  text,
    ward                 text,
    modality             text,
    received_at          timestamptz NOT NULL DEFAULT now()
);

-- Clinician systems: where notifications go for a department ('*' = any department).
CREATE TABLE receiver (
    receiver_id    text PRIMARY KEY,
    name           text NOT NULL,
    department     text NOT NULL DEFAULT '*',
    hl7_host       text,
    hl7_port       integer,
    hl7_message_type text NOT NULL DEFAULT 'ORU^R01',
    fhir_base_url  text,
    fhir_request   text CHECK (fhir_request IN ('Task', 'CommunicationRequest')),  -- also POST one of these
    active         boolean NOT NULL DEFAULT true,
    CHECK (hl7_host IS NOT NULL OR fhir_base_url IS NOT NULL)
);

-- On-call rosters: who answers for a department (or ward) at a time.
CREATE TABLE roster_entry (
    entry_id     bigserial PRIMARY KEY,
    department   text NOT NULL,
    duty         text NOT NULL CHECK (duty IN ('on-call', 'backup', 'head')),
    person_id    text NOT NULL,
    person_name  text NOT NULL,
    phone        text,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX roster_entry_lookup ON roster_entry (department, duty, starts_at, ends_at);

-- The escalation chain (configurable): steps in order, each waiting after_minutes for an acknowledgement.
CREATE TABLE escalation_chain (
    chain_id   text PRIMARY KEY,
    steps      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);
INSERT INTO escalation_chain (chain_id, steps, updated_by) VALUES ('default',
  '[{"action": "repeat", "after_minutes": 5}, {"action": "backup-clinician", "after_minutes": 5},
    {"action": "phone-task", "after_minutes": 10}, {"action": "department-head", "after_minutes": 10}]', 'system');

CREATE TABLE critical_value (
    critical_id            text PRIMARY KEY,
    accession_number       text NOT NULL,
    patient                jsonb NOT NULL,
    patient_id             text NOT NULL,
    finding                text NOT NULL,
    item_code              text,
    dictionary_version     integer,
    category               smallint,
    modality               text,
    report_id              text,
    source                 text NOT NULL CHECK (source IN ('radiologist', 'dictionary', 'ai')),
    raised_by              text NOT NULL,
    raised_at              timestamptz NOT NULL,
    ai_model               text,
    ai_score               double precision,
    state                  text NOT NULL,
    requires_confirmation  boolean NOT NULL DEFAULT false,
    confirmed_by           text,
    confirmed_at           timestamptz,
    notify_due_at          timestamptz,
    ack_due_at             timestamptz,
    recipient_id           text,
    recipient_name         text,
    department             text,
    ward                   text,
    first_notified_at      timestamptz,
    acknowledged_at        timestamptz,
    acknowledged_by        text,
    ack_channel            text,
    action_taken           text,
    escalation_level       integer NOT NULL DEFAULT 0,
    closed_at              timestamptz,
    outcome                text,
    created_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX critical_value_open ON critical_value (state) WHERE closed_at IS NULL;
CREATE INDEX critical_value_raised ON critical_value (raised_at);
CREATE INDEX critical_value_accession ON critical_value (accession_number);

-- One message to one clinician system. notification_id is the stable identifier (HL7 MSH-10 and the
-- FHIR Communication identifier): a re-send after a crash carries the same id, so receivers drop it.
CREATE TABLE notification (
    notification_id  text PRIMARY KEY,
    critical_id      text NOT NULL REFERENCES critical_value(critical_id),
    step             integer NOT NULL,        -- 0 = first notification, n = escalation step n
    channel          text NOT NULL CHECK (channel IN ('hl7', 'fhir')),
    receiver_id      text NOT NULL REFERENCES receiver(receiver_id),
    recipient_id     text,
    recipient_name   text,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    accepted_at      timestamptz,
    remote_id        text,                    -- the FHIR Communication id the receiver assigned
    task_id          text,                    -- the FHIR Task/CommunicationRequest id, when one was asked for
    last_error       text
);
CREATE INDEX notification_due ON notification (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_critical ON notification (critical_id);
CREATE INDEX notification_task ON notification (task_id) WHERE task_id IS NOT NULL;

-- Timers live here, not in memory: a scheduler polls due rows (FOR UPDATE SKIP LOCKED, so replicas
-- never fire one twice) and catches up on start after downtime.
CREATE TABLE timer (
    timer_id     bigserial PRIMARY KEY,
    critical_id  text NOT NULL REFERENCES critical_value(critical_id),
    kind         text NOT NULL CHECK (kind IN ('notify-deadline', 'ack-deadline')),
    step         integer NOT NULL DEFAULT 0,
    due_at       timestamptz NOT NULL,
    fired_at     timestamptz,
    cancelled    boolean NOT NULL DEFAULT false
);
CREATE INDEX timer_due ON timer (due_at) WHERE fired_at IS NULL AND NOT cancelled;

-- The timeline: every step, timed and logged (who, when, what).
CREATE TABLE action_log (
    log_id       bigserial PRIMARY KEY,
    critical_id  text NOT NULL REFERENCES critical_value(critical_id),
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor        text NOT NULL,
    action       text NOT NULL,
    channel      text,
    recipient    text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX action_log_critical ON action_log (critical_id, at);

-- A phone call a human must make (escalation step or failed delivery), with its outcome.
CREATE TABLE phone_task (
    task_id      bigserial PRIMARY KEY,
    critical_id  text NOT NULL REFERENCES critical_value(critical_id),
    reason       text NOT NULL,
    call_whom    text,
    phone        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    outcome      text CHECK (outcome IN ('reached', 'no-answer', 'wrong-number', 'other')),
    called_person text,
    called_at    timestamptz,
    recorded_by  text,
    notes        text
);
CREATE INDEX phone_task_open ON phone_task (critical_id) WHERE status = 'open';

-- Fallback (7.1.3 (4)): a phone notification recorded on paper/while the system was down, entered
-- later and linked to its critical value.
CREATE TABLE manual_record (
    record_id        bigserial PRIMARY KEY,
    critical_id      text REFERENCES critical_value(critical_id),
    accession_number text NOT NULL,
    finding          text NOT NULL,
    called_person    text NOT NULL,
    called_at        timestamptz NOT NULL,
    caller           text NOT NULL,
    read_back        boolean NOT NULL DEFAULT false,
    action_taken     text,
    notes            text,
    entered_by       text NOT NULL,
    entered_at       timestamptz NOT NULL DEFAULT now(),
    linked_at        timestamptz,
    linked_by        text
);
CREATE INDEX manual_record_accession ON manual_record (accession_number);
