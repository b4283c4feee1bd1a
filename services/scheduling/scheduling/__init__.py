"""Scheduling: One appointment pool for all rooms and campuses."""
