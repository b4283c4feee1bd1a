-- Who a person is (name, birth date, sex) never changes silently: a source record linked to a person that
-- would change those waits as 'pending' until someone at the desk confirms it (or rejects it). The golden
-- record is built from 'applied' records only.
ALTER TABLE empi_source_record ADD COLUMN status text NOT NULL DEFAULT 'applied'
    CHECK (status IN ('applied', 'pending', 'rejected'));
ALTER TABLE empi_source_record ADD COLUMN decided_by text;
ALTER TABLE empi_source_record ADD COLUMN decided_at timestamptz;
CREATE INDEX empi_source_record_pending ON empi_source_record (created_at) WHERE status = 'pending';
