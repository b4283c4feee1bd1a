"""The versioned dictionary of critical-value items (smart-imaging standard 7.1.3 (2), 8.7.1 (1)).

A version is immutable once published; an admin's change publishes version N+1 holding the whole
item list, so a critical value's `dictionary_version` always names exactly what it was judged by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from critical_values.domain.errors import Invalid, NotFound


@dataclass(frozen=True)
class Item:
    version: int
    code: str
    name: str
    name_en: str | None
    modalities: list[str]
    category: int
    notify_minutes: float
    ack_minutes: float
    requires_senior_confirmation: bool
    active: bool = True

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Item:
        return cls(row["version"], row["code"], row["name"], row["name_en"], list(row["modalities"]),
                   int(row["category"]), float(row["notify_minutes"]), float(row["ack_minutes"]),
                   row["requires_senior_confirmation"], row["active"])

    def public(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def applies_to(self, modality: str | None) -> bool:
        return not self.modalities or modality is None or modality.upper() in self.modalities


async def current_version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM dictionary_version"))


async def items(conn: asyncpg.Connection, version: int | None = None) -> tuple[int, list[Item]]:
    """The items of `version` (the current one by default)."""
    version = version or await current_version(conn)
    if not await conn.fetchval("SELECT 1 FROM dictionary_version WHERE version = $1", version):
        raise NotFound(f"dictionary version {version} does not exist")
    rows = await conn.fetch("SELECT * FROM dictionary_item WHERE version = $1 ORDER BY category, code", version)
    return version, [Item.from_row(r) for r in rows]


async def versions(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT v.*, (SELECT count(*) FROM dictionary_item i WHERE i.version = v.version) AS items
           FROM dictionary_version v ORDER BY version DESC""")
    return [dict(r) for r in rows]


async def find(conn: asyncpg.Connection, *, code: str | None, finding: str, modality: str | None,
               strict: bool = True) -> Item | None:
    """The current item for a code (ours or an alias of it), else the first active item whose name
    appears in the finding text. An unknown code is refused when `strict` (a person typed it); from
    another system (`strict=False`) it falls back to the text, so a critical value is never dropped."""
    version = await current_version(conn)
    if code:
        row = await conn.fetchrow(
            """SELECT * FROM dictionary_item WHERE version = $1
               AND code = coalesce((SELECT a.code FROM item_alias a WHERE a.alias = $2), $2)""", version, code)
        if row is not None:
            return Item.from_row(row)
        if strict:
            raise Invalid(f"critical-value item {code!r} is not in dictionary version {version}")
    text = finding.lower()
    _, current = await items(conn, version)
    for item in current:
        names = [item.name.lower()] + ([item.name_en.lower()] if item.name_en else [])
        if item.active and item.applies_to(modality) and any(n and n in text for n in names):
            return item
    return None


async def publish_version(conn: asyncpg.Connection, *, new_items: list[dict[str, Any]], by: str,
                          note: str | None = None) -> int:
    """Publish a new version holding exactly `new_items`; returns its number. Caller holds a transaction."""
    codes = [i["code"] for i in new_items]
    if len(codes) != len(set(codes)):
        raise Invalid("item codes must be unique within a version")
    if not new_items:
        raise Invalid("a dictionary version needs at least one item")
    # Serialize publishers so two admins never get the same number.
    await conn.execute("LOCK TABLE dictionary_version IN SHARE ROW EXCLUSIVE MODE")
    version = await current_version(conn) + 1
    await conn.execute("INSERT INTO dictionary_version (version, published_by, note) VALUES ($1, $2, $3)",
                       version, by, note)
    await conn.executemany(
        """INSERT INTO dictionary_item (version, code, name, name_en, modalities, category, notify_minutes,
               ack_minutes, requires_senior_confirmation, active) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)""",
        [(version, i["code"], i["name"], i.get("name_en"), [m.upper() for m in i.get("modalities") or []],
          i["category"], i["notify_minutes"], i["ack_minutes"], bool(i.get("requires_senior_confirmation")),
          i.get("active", True)) for i in new_items])
    return version
