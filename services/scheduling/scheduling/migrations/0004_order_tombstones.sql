-- Orders cancelled (order.cancelled), kept as tombstones: an order snapshot without a version (an older
-- producer) that arrives after the cancel, or before it with its requests, never reopens the requests.
CREATE TABLE cancelled_order (
    order_id     text PRIMARY KEY,
    reason       text NOT NULL,
    cancelled_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO cancelled_order (order_id, reason)
SELECT order_id, min(cancel_reason) FROM exam_request
 WHERE status = 'cancelled' AND cancel_reason LIKE 'order cancelled%' GROUP BY order_id
ON CONFLICT DO NOTHING;
