-- A print's manifest (its facts and the keys of its spooled images) kept in its films row, committed
-- with it: the N-ACTION is made durable by one commit, without a manifest file to write and fsync first.
-- NULL for films spooled before (their manifest is the object at spool_key).
ALTER TABLE films ADD COLUMN spool_manifest bytea;
