-- What the patient's printed report shows and its verification QR proves: who signed, and the hash of
-- the signed content (report.signed; an amendment carries none, so it is cleared with the new version).
ALTER TABLE exam ADD COLUMN signed_by text, ADD COLUMN content_sha256 text;
