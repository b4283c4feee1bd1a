-- The registration schema itself is created by the migrator; its tables come with its features.
COMMENT ON SCHEMA registration IS 'Front desk: patients, EMPI, orders, HIS feed, staff identity';
