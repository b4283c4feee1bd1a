-- Orders cancelled (order.cancelled), kept as tombstones: a cancel that arrives before its order or its
-- appointment still wins, so a late appointment.booked (another subject) never makes the exam active again.
CREATE TABLE cancelled_order (
    accession_number text PRIMARY KEY,
    order_id         text NOT NULL,
    reason           text,
    cancelled_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO cancelled_order (accession_number, order_id)
SELECT accession_number, order_id FROM exam WHERE order_status = 'cancelled'
ON CONFLICT DO NOTHING;

-- The exam's item, priority and special conditions are the order's (order.created / order.changed):
-- once an order event was applied, an appointment event no longer overwrites them with its own copy,
-- which may be older than the order's last change.
ALTER TABLE exam ADD COLUMN order_known boolean NOT NULL DEFAULT false;
UPDATE exam SET order_known = true;
