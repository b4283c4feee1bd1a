-- The reporting schema itself is created by the migrator; its tables come with its features.
COMMENT ON SCHEMA reporting IS 'Report workflow, structured reports, signing, HL7/FHIR delivery';
