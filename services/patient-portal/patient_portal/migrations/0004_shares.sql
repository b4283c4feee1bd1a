-- Share links a patient makes for their report (someone they choose opens it: another doctor, family).
-- Only the token's SHA-256 is kept; each link lives 1-30 days, can be revoked, and logs every opening.
CREATE TABLE share (
    share_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_sha256     text NOT NULL UNIQUE,
    phone            text NOT NULL,          -- whose session made it: only they list and revoke it
    empi_id          text NOT NULL,
    accession_number text NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz
);
CREATE INDEX share_phone ON share (phone, created_at DESC);

CREATE TABLE share_access (
    access_id  bigserial PRIMARY KEY,
    share_id   uuid NOT NULL REFERENCES share (share_id),
    at         timestamptz NOT NULL,
    source_ip  text,
    user_agent text,
    outcome    text NOT NULL               -- opened | expired | revoked
);
CREATE INDEX share_access_share ON share_access (share_id, at DESC);
