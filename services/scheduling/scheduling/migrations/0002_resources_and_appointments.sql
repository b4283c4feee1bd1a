-- Resources, calendars, rules and appointments of the one appointment pool (smart-imaging standard 5.3).
-- btree_gist lets an exclusion constraint combine "same room" (=) with "overlapping time" (&&):
-- the database itself refuses a double booking, whatever the number of replicas booking at once.
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

-- A room with its device: where a patient is sent. Campus/building/floor place it for triage (6.1.6).
CREATE TABLE room (
    id text PRIMARY KEY,                         -- e.g. "CT-A2"
    name text NOT NULL,                          -- e.g. "CT 2室"
    modality text NOT NULL,                      -- DICOM modality of its device: CT, MR, DX, US, RF...
    campus text NOT NULL,                        -- e.g. "本部", "东院"
    building text NOT NULL DEFAULT '',
    floor text NOT NULL DEFAULT '',
    location text NOT NULL DEFAULT '',           -- printed place, e.g. "门诊楼2层 放射科 CT2室"
    route text NOT NULL DEFAULT '',              -- how to get there from the entrance (receipt, 5.3.5)
    station_ae_title text,                       -- the modality's AE title, for the worklist
    capabilities text[] NOT NULL DEFAULT '{}',   -- e.g. {contrast, anaesthesia, bariatric}
    slice_minutes integer NOT NULL DEFAULT 10 CHECK (slice_minutes BETWEEN 1 AND 240),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Working hours of a room by ISO weekday (1 = Monday), in the center's local time; one row a session.
CREATE TABLE room_session (
    id bigserial PRIMARY KEY,
    room_id text NOT NULL REFERENCES room(id) ON DELETE CASCADE,
    weekday integer NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    starts time NOT NULL,
    ends time NOT NULL,
    label text NOT NULL DEFAULT '',              -- e.g. "上午", "下午"
    CHECK (ends > starts)
);
CREATE INDEX room_session_room ON room_session (room_id, weekday);

-- Closures and maintenance windows: a room, a whole campus, or (both null) everything.
CREATE TABLE closure (
    id bigserial PRIMARY KEY,
    room_id text REFERENCES room(id) ON DELETE CASCADE,
    campus text,
    during tstzrange NOT NULL,
    kind text NOT NULL DEFAULT 'maintenance' CHECK (kind IN ('maintenance', 'holiday', 'other')),
    reason text NOT NULL DEFAULT ''
);
CREATE INDEX closure_during ON closure USING gist (during);

-- Exam types: how long the room is taken and how the patient prepares (time slices, 5.3.3).
CREATE TABLE exam_type (
    code text PRIMARY KEY,                        -- local exam item code, as in order.created
    name text NOT NULL,
    modality text NOT NULL,
    body_part text,
    duration_minutes integer NOT NULL CHECK (duration_minutes BETWEEN 1 AND 600),
    preparation_minutes integer NOT NULL DEFAULT 0 CHECK (preparation_minutes BETWEEN 0 AND 600),
    contrast text NOT NULL DEFAULT 'none' CHECK (contrast IN ('none', 'iodinated', 'gadolinium', 'barium', 'other')),
    fasting boolean NOT NULL DEFAULT false,
    required_capabilities text[] NOT NULL DEFAULT '{}',
    preparation text NOT NULL DEFAULT '',         -- instructions printed on the receipt
    auto_created boolean NOT NULL DEFAULT false   -- made from an order with defaults; an admin should review
);

-- Staff capacity: technologists rostered to rooms; an exam takes one technologist.
CREATE TABLE technologist (
    id text PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE roster (
    id bigserial PRIMARY KEY,
    technologist_id text NOT NULL REFERENCES technologist(id) ON DELETE CASCADE,
    room_id text NOT NULL REFERENCES room(id) ON DELETE CASCADE,
    weekday integer NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    starts time NOT NULL,
    ends time NOT NULL,
    CHECK (ends > starts)
);
CREATE INDEX roster_room ON roster (room_id, weekday);

-- Wards, placed like rooms, so inpatients go to the nearest room (6.1.6 (1)).
CREATE TABLE ward (
    code text PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    campus text NOT NULL,
    building text NOT NULL DEFAULT ''
);

-- Booking rules as data: a type the code knows, parameters, and the name and reason shown on refusal.
CREATE TABLE rule (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE,
    type text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}',
    reason text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);

-- Quotas per booking channel (5.3.2): at most max_per_session bookings of a channel in one room
-- session until release_minutes_before the session starts, when the unused quota joins the pool.
CREATE TABLE channel_quota (
    id bigserial PRIMARY KEY,
    channel text NOT NULL,
    room_id text REFERENCES room(id) ON DELETE CASCADE,   -- null: every room (of the modality)
    modality text,                                        -- null: every modality
    max_per_session integer NOT NULL CHECK (max_per_session >= 0),
    release_minutes_before integer NOT NULL DEFAULT 1440 CHECK (release_minutes_before >= 0)
);

-- What registration asked to be scheduled: one row per exam item of an order.
CREATE TABLE exam_request (
    order_id text NOT NULL,
    exam_code text NOT NULL,
    accession_number text NOT NULL,
    requested_procedure_id text NOT NULL DEFAULT '',
    study_instance_uid text NOT NULL DEFAULT '',
    exam_name text NOT NULL,
    modality text NOT NULL,
    empi_id text NOT NULL,
    patient jsonb NOT NULL,                       -- PatientRef as received
    patient_class text NOT NULL DEFAULT 'outpatient',
    ward text,
    special jsonb NOT NULL DEFAULT '{}',          -- SpecialConditions: critical, mdr, infectious
    priority text NOT NULL DEFAULT 'routine',
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'cancelled')),
    cancel_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, exam_code)
);
CREATE INDEX exam_request_patient ON exam_request (empi_id);

-- Appointments, FHIR Appointment statuses. The room and the technologist are each taken by at most
-- one live appointment at a time: the exclusion constraints are the guarantee, not the app's checks.
CREATE TABLE appointment (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id text NOT NULL,
    exam_code text NOT NULL,
    accession_number text NOT NULL,
    empi_id text NOT NULL,
    room_id text NOT NULL REFERENCES room(id),
    technologist_id text REFERENCES technologist(id),
    during tstzrange NOT NULL CHECK (NOT isempty(during)),
    status text NOT NULL CHECK (status IN ('proposed', 'pending', 'booked', 'arrived', 'checked-in', 'fulfilled',
                                           'cancelled', 'noshow', 'entered-in-error', 'waitlist')),
    channel text NOT NULL,
    hold_expires_at timestamptz,
    reason text,                                   -- why cancelled / no-show / entered in error
    booked_by text,
    reminded_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (order_id, exam_code) REFERENCES exam_request (order_id, exam_code),
    CONSTRAINT room_not_double_booked EXCLUDE USING gist (room_id WITH =, during WITH &&)
        WHERE (status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')),
    CONSTRAINT technologist_one_exam_at_a_time EXCLUDE USING gist (technologist_id WITH =, during WITH &&)
        WHERE (technologist_id IS NOT NULL AND status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled'))
);
-- One live appointment per requested exam.
CREATE UNIQUE INDEX appointment_one_live_per_request ON appointment (order_id, exam_code)
    WHERE status IN ('proposed', 'pending', 'booked', 'arrived', 'checked-in', 'waitlist');
CREATE INDEX appointment_patient ON appointment (empi_id, lower(during));
CREATE INDEX appointment_room_time ON appointment USING gist (room_id, during);
CREATE INDEX appointment_holds ON appointment (hold_expires_at) WHERE status = 'pending';
CREATE INDEX appointment_accession ON appointment (accession_number);

-- Every transition, reschedule and refusal-free change, with who and why.
CREATE TABLE appointment_history (
    id bigserial PRIMARY KEY,
    appointment_id uuid NOT NULL REFERENCES appointment(id),
    at timestamptz NOT NULL DEFAULT now(),
    event text NOT NULL,
    from_status text,
    to_status text NOT NULL,
    actor text,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX appointment_history_appointment ON appointment_history (appointment_id);
