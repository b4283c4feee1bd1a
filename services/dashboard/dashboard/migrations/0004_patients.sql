-- Who an exam is about, kept once per person (as registration's events say it now) instead of copied into
-- every exam row: a rename or a merge changes one row, and an older snapshot only fills gaps.
CREATE TABLE patient (
    empi_id     text PRIMARY KEY,
    patient     jsonb NOT NULL,        -- the PatientRef as kept (merge_patient)
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO patient (empi_id, patient)
SELECT DISTINCT ON (empi_id) empi_id, jsonb_build_object('empi_id', empi_id, 'name', patient_name)
FROM exam_fact WHERE empi_id IS NOT NULL ORDER BY empi_id, updated_at DESC;
ALTER TABLE exam_fact DROP COLUMN patient_name;
