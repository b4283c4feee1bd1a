-- A re-decided film (manual match, order cancelled, patient corrected or merged) whose film.dcm
-- still carries the identity it had: the renderer rewrites it; until then it is not served or sent.
ALTER TABLE films ADD COLUMN dicom_stale boolean NOT NULL DEFAULT false;
CREATE INDEX films_dicom_stale ON films (id) WHERE dicom_stale;
