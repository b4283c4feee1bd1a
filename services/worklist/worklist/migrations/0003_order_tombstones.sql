-- Orders cancelled (order.cancelled), kept as tombstones: a cancel that arrives before the order or
-- its appointment still wins, and a late appointment.booked never revives the step.
CREATE TABLE cancelled_orders (
    accession_number text PRIMARY KEY,
    order_id         text,
    reason           text,
    cancelled_at     timestamptz NOT NULL DEFAULT now()
);
