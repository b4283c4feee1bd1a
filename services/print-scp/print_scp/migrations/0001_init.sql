-- The print_scp schema itself is created by the migrator; its tables come with its features.
COMMENT ON SCHEMA print_scp IS 'DICOM virtual film printer (WS/T 597-2018): film sessions, matching, cloud film';
