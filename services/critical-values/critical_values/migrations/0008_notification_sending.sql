-- A notification being sent (issue 18, 8): the sender no longer holds the row locked in an open
-- transaction while it calls the receiver; it marks the row until when it is in flight instead.
-- Closing a value or re-routing it withdraws only messages not in flight (one being sent finishes and
-- is recorded); a sender that died mid-send leaves the mark to run out and the row is sent again.
ALTER TABLE notification ADD COLUMN sending_until timestamptz;
