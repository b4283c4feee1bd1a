-- Other systems name dictionary items in their own codes (reporting's CV-PTX, an AI vendor's labels):
-- an alias maps such a code to ours, so a critical value raised with it is judged by our item.
CREATE TABLE item_alias (
    alias      text PRIMARY KEY,
    code       text NOT NULL,          -- our item code (in whatever version is current)
    note       text
);
INSERT INTO item_alias (alias, code, note) VALUES
 ('CV-PTX', 'TPTX', 'reporting'), ('CV-AD', 'AOD', 'reporting'), ('CV-PE', 'PE', 'reporting'),
 ('CV-ICH', 'ICH', 'reporting'), ('CV-PERF', 'GIPERF', 'reporting'), ('CV-CI', 'STROKE', 'reporting'),
 ('CV-TORS', 'TORS', 'reporting'), ('CV-ECT', 'ECTOP', 'reporting');
