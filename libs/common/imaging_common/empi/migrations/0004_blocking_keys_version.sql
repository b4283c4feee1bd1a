-- Blocking keys are computed in Python (blocking.py). When its passes change (KEYS_VERSION), the keys
-- of records stored before are recomputed by store.rekey, in the background; until then those records
-- are found by the keys they have (the identifier and name + birth date keys of version 1 mostly remain).
ALTER TABLE empi_source_record ADD COLUMN keys_version integer NOT NULL DEFAULT 1;
CREATE INDEX empi_source_record_keys_version ON empi_source_record (keys_version);
