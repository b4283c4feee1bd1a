-- Self-service kiosks (issue 18, 8): each device has its own key (only its SHA-256 kept), revocable;
-- no key shared by every kiosk.
CREATE TABLE kiosk_devices (
    id          text PRIMARY KEY,                  -- e.g. "hall-1f-01"
    name        text NOT NULL,
    key_sha256  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    revoked_at  timestamptz,
    revoked_by  text
);

-- The patient's film slip: an unguessable token printed as a QR code (only its SHA-256 kept); the
-- accession number on a slip is no longer enough to fetch anyone's films.
CREATE TABLE film_slips (
    id                uuid PRIMARY KEY,
    token_sha256      text NOT NULL UNIQUE,
    accession_number  text NOT NULL,
    empi_id           text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text NOT NULL,
    expires_at        timestamptz NOT NULL,
    revoked_at        timestamptz
);
CREATE INDEX film_slips_accession ON film_slips (accession_number);
