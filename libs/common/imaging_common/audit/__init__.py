"""Append-only, hash-chained audit log. STUB."""
