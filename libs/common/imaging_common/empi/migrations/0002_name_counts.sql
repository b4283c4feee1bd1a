-- Name frequencies for value-specific name weights (frequencies.py): how many source records carry
-- each family name, given name, given-name length and given-name character (syllable), per script
-- ('H' characters, 'L' pinyin). Kept by store._insert_source in the same transaction as the record.
CREATE TABLE empi_name_count (
    script  text NOT NULL,
    kind    text NOT NULL CHECK (kind IN ('family', 'given', 'length', 'unit')),
    value   text NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (script, kind, value)
);

-- Records stored before the counts existed are counted by store.count_names (pinyin needs Python);
-- until none is left, matching does without frequencies (weights as before, never more links).
ALTER TABLE empi_source_record ADD COLUMN name_counted boolean NOT NULL DEFAULT false;
CREATE INDEX empi_source_record_uncounted ON empi_source_record (id) WHERE NOT name_counted;
