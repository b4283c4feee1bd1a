"""Critical values: Closed-loop critical results with deadlines and escalation."""
