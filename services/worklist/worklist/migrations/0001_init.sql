-- The worklist schema itself is created by the migrator; its tables come with its features.
COMMENT ON SCHEMA worklist IS 'DICOM Modality Worklist (C-FIND) and MPPS';
