"""Queue calling: Check-in, per-room queues, calling terminals, live screens."""
