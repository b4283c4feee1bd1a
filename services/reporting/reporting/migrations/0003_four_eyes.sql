-- Four eyes (issue 18, item 7): the final signer is not the preliminary author and an amendment is
-- decided by someone other than who asked for it. A site that reads alone
-- (IMAGING_REPORTING_SINGLE_READER) may skip the second reader; the report and the amendment then
-- say so, for every later reader (and the audit row of the step carries it too).
ALTER TABLE report ADD COLUMN single_reader boolean NOT NULL DEFAULT false;
ALTER TABLE amendment ADD COLUMN single_reader boolean NOT NULL DEFAULT false;
