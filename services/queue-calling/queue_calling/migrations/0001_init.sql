-- The queue_calling schema itself is created by the migrator; its tables come with its features.
COMMENT ON SCHEMA queue_calling IS 'Check-in, per-room queues, calling terminals, live screens';
