-- Modalities and printers watched on the status board (standard 9.1.2): where they answer C-ECHO,
-- their opening hours (utilisation, alerts), their last answer and activity, and maintenance records.
CREATE TABLE device (
    device_id     text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('modality', 'printer')),
    name          text NOT NULL,
    ae_title      text NOT NULL,   -- its own AE title: the one it answers C-ECHO as and sends MPPS / prints with
    host          text NOT NULL,
    port          integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    modality      text,
    room_id       text,
    campus        text,
    opens         time NOT NULL DEFAULT '08:00',
    closes        time NOT NULL DEFAULT '18:00',
    active        boolean NOT NULL DEFAULT true,
    -- what the poller and the events saw
    reachable     boolean,         -- NULL until its first C-ECHO
    last_echo_at  timestamptz,
    last_ok_at    timestamptz,     -- its last answer to a C-ECHO
    last_activity_at timestamptz,  -- its last MPPS or film
    alerted       boolean NOT NULL DEFAULT false,  -- device.disconnected sent and not yet followed by reconnected
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX device_ae_title ON device (ae_title);

CREATE TABLE maintenance (
    maintenance_id bigserial PRIMARY KEY,
    device_id     text NOT NULL REFERENCES device (device_id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('preventive', 'repair', 'calibration', 'inspection')),
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    note          text NOT NULL DEFAULT '',
    recorded_by   text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX maintenance_device ON maintenance (device_id, started_at DESC);

-- Wall screens (big screen): a token each, presented by the screen's WebSocket instead of a login.
CREATE TABLE screen (
    screen_id     text PRIMARY KEY,
    title         text NOT NULL,
    token         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
