-- Orders change (ORC-1 XO, the desk's "change"): when the exam is wanted, and when it last changed.
ALTER TABLE exam_order ADD COLUMN requested_at timestamptz;
ALTER TABLE exam_order ADD COLUMN updated_at timestamptz;
