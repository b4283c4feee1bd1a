-- Staff accounts (smart-imaging standard 10.2.3): roles, memory-hard password hash, TOTP, lockout.
CREATE TABLE staff_users (
    id              uuid PRIMARY KEY,
    username        text NOT NULL UNIQUE,
    display_name    text NOT NULL DEFAULT '',
    roles           text[] NOT NULL,
    password_hash   text NOT NULL,
    totp_secret     text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    last_login_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (roles <@ ARRAY['clerk','technologist','nurse','radiologist','senior-radiologist',
                          'clinician','admin','it-ops']::text[])
);
