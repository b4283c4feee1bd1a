-- The critical_values schema itself is created by the migrator; its tables come with its features.
COMMENT ON SCHEMA critical_values IS 'Closed-loop critical results with deadlines and escalation';
