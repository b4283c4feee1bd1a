-- The scheduling schema itself is created by the migrator; its tables come with its features.
COMMENT ON SCHEMA scheduling IS 'One appointment pool for all rooms and campuses';
