-- Whether the appointment's patient carries a multi-drug-resistant organism, kept on the appointment:
-- the calendar reads it for every appointment of a window, and a join per read was the search's cost.
ALTER TABLE appointment ADD COLUMN mdr boolean NOT NULL DEFAULT false;
UPDATE appointment a SET mdr = coalesce((q.special->>'mdr')::boolean, false)
  FROM exam_request q WHERE q.order_id = a.order_id AND q.exam_code = a.exam_code;
