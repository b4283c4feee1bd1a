-- Queue calling: what the service learned from events (exams), rooms and queues, queue entries
-- with their operation log, screens, and patient notifications (smart-imaging standard 6.2.2, 6.3).

-- One row per exam (accession number), fed by order.* and appointment.* events; check-in looks here.
CREATE TABLE exam (
    accession_number text PRIMARY KEY,
    order_id text NOT NULL,
    empi_id text NOT NULL,
    patient_id text NOT NULL,
    patient_name text NOT NULL,
    birth_date date,
    sex text NOT NULL DEFAULT 'U',
    phone text,
    id_number_masked text,          -- "1101**********1234"
    id_number_sha256 text,          -- when registration sends it: exact ID-card match
    card_number text,               -- hospital card, when registration sends it
    visit_number text,
    patient_class text NOT NULL DEFAULT 'outpatient',
    priority text NOT NULL DEFAULT 'routine',
    special jsonb NOT NULL DEFAULT '{}'::jsonb,
    exam_code text NOT NULL,
    exam_name text NOT NULL,
    modality text NOT NULL,
    contrast boolean NOT NULL DEFAULT false,
    order_status text NOT NULL DEFAULT 'active',     -- active | cancelled
    appointment_id text,
    appointment_status text,                          -- booked | cancelled
    room_id text,                                     -- booked room (device)
    room_name text,
    appointment_start timestamptz,
    appointment_end timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exam_order_idx ON exam (order_id);
CREATE INDEX exam_appointment_idx ON exam (appointment_id);
CREATE INDEX exam_patient_idx ON exam (patient_id);
CREATE INDEX exam_card_idx ON exam (card_number);
CREATE INDEX exam_idhash_idx ON exam (id_number_sha256);
CREATE INDEX exam_idmasked_idx ON exam (id_number_masked);

-- A room (device) serves one or more queues; a queue may be served by several rooms.
CREATE TABLE room (
    room_id text PRIMARY KEY,
    name text NOT NULL,
    door_cap integer NOT NULL DEFAULT 2 CHECK (door_cap >= 1),  -- patients staged at the door
    rr_cursor integer NOT NULL DEFAULT -1,   -- index of the queue called last (round robin)
    view_seq bigint NOT NULL DEFAULT 0,      -- bumped (and row-locked) by every change a screen shows
    active boolean NOT NULL DEFAULT true
);

CREATE TABLE queue (
    queue_id text PRIMARY KEY,
    name text NOT NULL,
    ticket_prefix text NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    policy jsonb NOT NULL DEFAULT '{}'::jsonb,      -- priority policy, see domain/priority.py
    skip_rule jsonb NOT NULL DEFAULT '{"mode": "after_n", "n": 3}'::jsonb,
    avg_service_minutes numeric NOT NULL DEFAULT 10,
    priority_streak integer NOT NULL DEFAULT 0,     -- priority calls in a row (fairness rule)
    call_seq bigint NOT NULL DEFAULT 0              -- calls made so far (skip "after N" rule)
);

CREATE TABLE room_queue (
    room_id text NOT NULL REFERENCES room ON DELETE CASCADE,
    queue_id text NOT NULL REFERENCES queue ON DELETE CASCADE,
    position integer NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, queue_id)
);

-- Check-in placement: the first matching rule (lowest rank) decides the queue (6.2.2 (1)).
CREATE TABLE placement_rule (
    rule_id bigserial PRIMARY KEY,
    rank integer NOT NULL DEFAULT 100,
    queue_id text NOT NULL REFERENCES queue ON DELETE CASCADE,
    modality text,            -- NULL matches any
    exam_code_prefix text,
    preparation text,         -- none | injection | anaesthesia
    room_id text,             -- the booked device
    technologist text
);

CREATE TABLE ticket_counter (
    queue_id text NOT NULL,
    day date NOT NULL,
    last_number integer NOT NULL DEFAULT 0,
    PRIMARY KEY (queue_id, day)
);

CREATE TABLE queue_entry (
    entry_id uuid PRIMARY KEY,
    queue_id text NOT NULL REFERENCES queue,
    ticket text NOT NULL,
    state text NOT NULL,
    accession_number text NOT NULL,
    order_id text NOT NULL,
    appointment_id text,
    appointment_start timestamptz,
    empi_id text NOT NULL,
    patient_id text NOT NULL,
    patient_name text NOT NULL,
    sex text NOT NULL DEFAULT 'U',
    age integer,
    exam_name text NOT NULL,
    modality text NOT NULL,
    preparation text NOT NULL DEFAULT 'none',
    technologist text,
    priority_level integer NOT NULL DEFAULT 0,
    priority_reasons text[] NOT NULL DEFAULT '{}',
    special jsonb NOT NULL DEFAULT '{}'::jsonb,
    on_time boolean NOT NULL DEFAULT false,    -- arrived within its appointment slot
    sort_key double precision NOT NULL,        -- FIFO order; manual reorder moves it
    room_id text,                              -- the room that called it
    call_count integer NOT NULL DEFAULT 0,
    skip_count integer NOT NULL DEFAULT 0,
    return_at_seq bigint,                      -- skip rule "after N": back when queue.call_seq reaches it
    return_at timestamptz,                     -- skip rule "end of slice"
    arrived_at timestamptz NOT NULL,
    first_called_at timestamptz,
    called_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    last_notified_ahead integer,
    version integer NOT NULL DEFAULT 1
);
-- One live entry per exam: a second check-in of the same exam is refused, not duplicated.
CREATE UNIQUE INDEX queue_entry_live_exam ON queue_entry (accession_number)
    WHERE state NOT IN ('done', 'cancelled');
CREATE INDEX queue_entry_queue_state ON queue_entry (queue_id, state, priority_level DESC, sort_key);
CREATE INDEX queue_entry_room_state ON queue_entry (room_id, state);
CREATE INDEX queue_entry_day ON queue_entry (arrived_at);

-- Operation log of each entry (6.2.2 (7)): every action, who did it, from which terminal.
CREATE TABLE entry_log (
    log_id bigserial PRIMARY KEY,
    entry_id uuid NOT NULL REFERENCES queue_entry,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    action text NOT NULL,
    from_state text,
    to_state text NOT NULL,
    actor text NOT NULL,
    terminal text,
    queue_id text,
    room_id text,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX entry_log_entry ON entry_log (entry_id, log_id);

-- Screens are configured centrally (6.2.2 (7)): kind, rooms, layout, timed on/off, masking rule.
CREATE TABLE screen (
    screen_id text PRIMARY KEY,
    token text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('hall', 'door')),
    title text NOT NULL DEFAULT '',
    room_ids text[] NOT NULL DEFAULT '{}',
    layout jsonb NOT NULL DEFAULT '{}'::jsonb,
    on_time time,
    off_time time,
    mask_rule jsonb NOT NULL DEFAULT '{"mode": "middle"}'::jsonb,
    speech boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Patient notifications: who wants them on which channel, and what is waiting to be sent.
CREATE TABLE notify_target (
    entry_id uuid NOT NULL REFERENCES queue_entry,
    channel text NOT NULL,
    target text NOT NULL,
    PRIMARY KEY (entry_id, channel, target)
);

CREATE TABLE notification (
    notification_id bigserial PRIMARY KEY,
    entry_id uuid NOT NULL,
    channel text NOT NULL,
    target text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    failed_at timestamptz,
    last_error text
);
CREATE INDEX notification_pending ON notification (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
