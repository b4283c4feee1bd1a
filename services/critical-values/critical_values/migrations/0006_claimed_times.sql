-- Times are the server's (issue 18, item 3). Every time a peer or a person claims is kept beside
-- the time we received it, and judged: not in the future beyond IMAGING_CRITICAL_CLOCK_SKEW_SECONDS,
-- not before the value was raised. A claim judged implausible is kept with the reason (the
-- *_invalid columns, NULL = plausible or none) and never used for deadlines or statistics.
ALTER TABLE critical_value
    -- what the raiser said (POST raised_at, back-entry); raised_at is when it reached us
    ADD COLUMN raised_claimed_at           timestamptz,
    ADD COLUMN raised_claim_invalid        text,
    -- why acknowledged_claimed_at (0005: EVN-6, FHIR sent/lastModified, a phone call's time) was not believed
    ADD COLUMN acknowledged_claim_invalid  text;

-- A phone call's outcome: called_at is what the caller says, recorded_at when it was recorded.
ALTER TABLE phone_task
    ADD COLUMN recorded_at        timestamptz,
    ADD COLUMN called_at_invalid  text;

-- A manual phone record: called_at is what was written down, entered_at when it reached us.
ALTER TABLE manual_record ADD COLUMN called_at_invalid text;
