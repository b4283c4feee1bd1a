"""Critical values' part of the starter department (imaging_common.starter): the dictionary and the
escalation chain. The migrations already publish version 1 and a default chain, so on a fresh platform
this adds only the items the starter has beyond them, as a new version holding the current items plus
those. An item code ever published is the admin's to keep, change or retire: it is never added back;
an existing chain is kept."""

from __future__ import annotations

import asyncpg
from imaging_common.starter import Department, Report, Tally

from critical_values.domain import dictionary, escalation

PUBLISHED_BY = "starter"


async def load(conn: asyncpg.Connection, department: Department) -> Report:
    items, chain = Tally(), Tally()
    ever = {r["code"] for r in await conn.fetch("SELECT DISTINCT code FROM dictionary_item")}
    new = [i for i in department.critical_items if items.add(i.code, i.code not in ever)]
    if new:
        current = (await dictionary.items(conn))[1] if await dictionary.current_version(conn) else []
        kept = [{k: v for k, v in i.public().items() if k != "version"} for i in current]
        await dictionary.publish_version(conn, new_items=kept + [i.model_dump() for i in new], by=PUBLISHED_BY,
                                         note=f"starter configuration: {', '.join(i.code for i in new)}")
    if department.escalation and chain.add("default", not await escalation.chain(conn)):
        await escalation.set_chain(conn, [s.model_dump() for s in department.escalation], by=PUBLISHED_BY)
    return {"dictionary_items": items, "escalation_chain": chain}
