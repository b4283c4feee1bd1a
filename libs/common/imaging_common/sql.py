"""A query's WHERE clause built from optional criteria, with asyncpg's numbered arguments ($1, $2, ...).

    where = Where("p.status = 'active'")
    where.given("p.empi_id = {}", empi_id)
    rows = await conn.fetch(f"SELECT ... WHERE {where} LIMIT {where.arg(limit)}", *where.args)

The values travel as arguments, never in the SQL text; only the templates (the code's own) are SQL.
"""

from __future__ import annotations

from typing import Any


class Where:
    def __init__(self, *always: str) -> None:
        self.clauses: list[str] = list(always)
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        """`value` as the next numbered argument: its placeholder."""
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, template: str, *values: Any) -> None:
        """One more condition: `template` with a `{}` for each of `values` (their placeholders, in order)."""
        self.clauses.append(template.format(*(self.arg(v) for v in values)))

    def given(self, template: str, value: Any) -> None:
        """`add(template, value)` when a value is given (not None): an optional criterion."""
        if value is not None:
            self.add(template, value)

    def __str__(self) -> str:
        return " AND ".join(self.clauses) or "true"
