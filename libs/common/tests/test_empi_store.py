"""EMPI storage against PostgreSQL: register/link, review, merge with golden record, unmerge, concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import asyncpg
import pytest
from imaging_common.empi import store
from imaging_common.empi.identifiers import InvalidIdentifier, resident_check_char
from imaging_common.empi.store import IncomingPerson

SCHEMA_SQL = "\n".join(p.read_text() for p in sorted((Path(store.__file__).parent / "migrations").glob("*.sql")))


def rid(region: str, born: str, seq: int) -> str:
    first = f"{region}{born}{seq:03d}"
    return first + resident_check_char(first)


@pytest.fixture(scope="module")
async def pool(test_env) -> AsyncIterator[asyncpg.Pool]:
    schema = f"empi_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(test_env["DATABASE_URL"])
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"SET search_path = {schema}")
    await conn.execute(SCHEMA_SQL)
    await conn.close()
    p = await asyncpg.create_pool(test_env["DATABASE_URL"], min_size=1, max_size=4,
                                  server_settings={"search_path": schema})
    yield p
    await p.close()


def person(name: str, idn: str | None, **kw) -> IncomingPerson:
    return IncomingPerson(name=name, identifiers=[("resident-id", idn)] if idn else [], **kw)


async def test_register_then_link_a_typo_duplicate_and_keep_twins_apart(pool: asyncpg.Pool) -> None:
    idn = rid("320102", "19770415", 311)
    typo = idn[:8] + idn[9] + idn[8] + idn[10:] if idn[8] != idn[9] else idn[:8] + "9" + idn[9:]
    async with pool.acquire() as conn:
        first = await store.register(conn, person("陈志强", idn, phone="13711112222"), actor="clerk1")
        assert first.outcome == "created" and first.person.birth_date == date(1977, 4, 15)
        again = await store.register(conn, person("陳志強", typo, phone="13711112222", source="his"), actor="his",
                                     strict=False)
        assert again.outcome == "linked" and again.person.empi_id == first.person.empi_id
        twin = await store.register(conn, person("陈志刚", rid("320102", "19770415", 313), phone="13711112222"),
                                    actor="clerk1")
        assert twin.outcome == "created" and twin.person.empi_id != first.person.empi_id
        assert twin.review_ids == []  # different valid IDs: not even a review item
        hist = await store.history(conn, first.person.empi_id)
        assert [h["action"] for h in hist] == ["register", "link"]
        found = await store.find_by_identifier(conn, "resident-id", idn)
        assert found is not None and found.empi_id == first.person.empi_id
        assert first.person.id_number_masked == idn[:4] + "*" * 10 + idn[-4:]


async def test_malformed_id_is_refused_and_nothing_is_stored(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM empi_person")
        with pytest.raises(InvalidIdentifier):
            await store.register(conn, person("李四", "123456"), actor="clerk1")
        assert await conn.fetchval("SELECT count(*) FROM empi_person") == before


async def test_review_merge_golden_record_and_unmerge(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        a = await store.register(conn, person("赵敏", None, birth_date=date(1990, 6, 1), sex="F"), actor="c")
        b = await store.register(conn, person("赵敏", rid("110108", "19900601", 42), birth_date=date(1990, 6, 1),
                                              sex="F", phone="13600012345"), actor="c")
        assert b.outcome == "created" and len(b.review_ids) == 1  # name + birth date only: a person decides
        result = await store.resolve_review(conn, b.review_ids[0], "merge", actor="clerk2", survivor=a.person.empi_id)
        survivor = result["survivor"]
        assert survivor.empi_id == a.person.empi_id and survivor.phone == "13600012345"
        assert survivor.id_number == rid("110108", "19900601", 42)
        merged = await store.get_person(conn, b.person.empi_id)
        assert merged.status == "merged" and merged.merged_into == a.person.empi_id
        assert (await store.get_person(conn, b.person.empi_id, follow_merged=True)).empi_id == a.person.empi_id
        kept, restored = await store.unmerge(conn, b.person.empi_id, actor="clerk3", reason="wrong merge")
        assert restored.status == "active" and restored.id_number == rid("110108", "19900601", 42)
        assert kept.id_number is None and kept.phone is None
        actions = [h["action"] for h in await store.history(conn, a.person.empi_id)]
        assert actions[-2:] == ["merge", "unmerge"]
        # After an unmerge the pair is known distinct: a later identical registration opens no review with it.
        with pytest.raises(store.EmpiError):
            await store.resolve_review(conn, b.review_ids[0], "distinct", actor="c")


async def test_concurrent_registrations_of_one_person_make_one_person(pool: asyncpg.Pool) -> None:
    idn = rid("510104", "19660909", 77)

    async def reg() -> str:
        async with pool.acquire() as conn:
            res = await store.register(conn, person("杨洋", idn, phone="13900001111"), actor="c")
            return res.person.empi_id

    ids = await asyncio.gather(*(reg() for _ in range(4)))
    assert len(set(ids)) == 1


async def test_patient_ref_carries_the_latest_hospital_card_for_check_in(pool: asyncpg.Pool) -> None:
    from imaging_common.events.types import PatientRef
    idn = rid("440106", "19660301", 58)
    async with pool.acquire() as conn:
        first = await store.register(conn, IncomingPerson(
            name="黄丽华", identifiers=[("resident-id", idn), ("hospital-card", "C0001234")]), actor="clerk1")
        assert first.person.patient_ref()["card_number"] == "C0001234"
        # The card was lost: a new one is issued; the event carries the card the patient now holds.
        again = await store.register(conn, IncomingPerson(
            name="黄丽华", identifiers=[("resident-id", idn), ("hospital-card", "C0009876")]), actor="clerk2")
        assert again.outcome == "linked"
        ref = PatientRef(**again.person.patient_ref())
        assert ref.card_number == "C0009876" and ref.id_number_masked == idn[:4] + "*" * 10 + idn[-4:]
        assert idn not in ref.model_dump_json()
        nocard = await store.register(conn, person("周建国", rid("440106", "19700707", 71)), actor="clerk1")
        assert nocard.person.patient_ref()["card_number"] is None


async def _population(conn: asyncpg.Connection, names: list[tuple[str, date]]) -> None:
    """People already in the index (as an upgrade finds them: stored before names were counted)."""
    rows = [(f"POP{uuid.uuid4().hex[:12]}", name, born) for name, born in names]
    await conn.executemany("INSERT INTO empi_person (empi_id, patient_id, name, birth_date) VALUES ($1, $1, $2, $3)",
                           rows)
    await conn.executemany(
        "INSERT INTO empi_source_record (id, empi_id, source, name, birth_date, actor) "
        "VALUES ($1, $2, 'batch', $3, $4, 'import')", [(uuid.uuid4(), *row) for row in rows])


async def test_name_frequencies_from_the_database_weigh_rare_names_more(pool: asyncpg.Pool) -> None:
    """The registration path weighs an agreed name by its frequency as the in-memory index does:
    counts kept in empi_name_count, older records counted once (count_names), none meanwhile."""
    from imaging_common.empi.frequencies import NameFrequencies
    from imaging_common.empi.names import name_form
    from imaging_common.empi.record import MatchRecord
    from imaging_testing.synthetic import Generator

    people = [(r.name, r.birth_date or date(1980, 1, 1)) for r in Generator(seed=5).population(3000)]
    people += [("王伟", date(1950 + n, 7, 1 + n % 9)) for n in range(30)]  # a common name, born other days
    born = date(1988, 11, 2)
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE empi_name_count")
        await conn.execute("UPDATE empi_source_record SET name_counted = false")
        await _population(conn, people)
        rare = await store.register(conn, person("覃炜婕", None, birth_date=born, sex="F", phone="13912345678"),
                                    actor="clerk1")
        common = await store.register(conn, person("王伟", rid("310104", "19881102", 23), birth_date=born,
                                                   phone="13912340000"), actor="clerk1")
        # Older records not yet counted: no frequencies, so name + birth date alone is a clerk's decision.
        assert await store.name_frequencies(conn, name_form("覃炜婕")) is None
        held = await store.find_candidates(conn, person("覃炜婕", None, birth_date=born, sex="F").match_record(),
                                           scorer=store.Scorer())
        assert held[0].empi_id == rare.person.empi_id and held[0].scored.band is store.Band.REVIEW

        counted = await store.count_names(conn)
        existing = await conn.fetch("SELECT name FROM empi_source_record")
        assert counted == len(existing) - 2  # the two registrations were counted when stored
        assert await store.count_names(conn) == 0
        # The database's counts give the frequencies the in-memory counts of the same names give.
        memory = NameFrequencies(MatchRecord.build(str(n), name=r["name"]) for n, r in enumerate(existing))
        for name in ("王伟", "覃炜婕", "WANG WEI"):
            form = name_form(name)
            db = await store.name_frequencies(conn, form)
            assert db is not None
            for script in ("H", "L"):
                assert db.frequency(form, 1, script) == pytest.approx(memory.frequency(form, 1, script)), name

        # Same day, nothing else to compare: the rare name links, the common one waits for a clerk.
        again = await store.register(conn, person("覃炜婕", None, birth_date=born, sex="F"), actor="clerk2")
        assert again.outcome == "linked" and again.person.empi_id == rare.person.empi_id
        namesake = await store.register(conn, person("王伟", None, birth_date=born), actor="clerk2")
        assert namesake.outcome == "created" and namesake.review_ids
        assert [c.scored.name_bits for c in namesake.candidates if c.empi_id == common.person.empi_id][0] < 0


async def test_rekey_brings_records_stored_with_older_blocking_keys_up(pool: asyncpg.Pool) -> None:
    """An upgrade whose blocking passes changed: older records get the new keys, and are found by them."""
    from imaging_common.empi.blocking import KEYS_VERSION, blocking_keys

    idn = rid("510104", "19920714", 33)
    async with pool.acquire() as conn:
        first = await store.register(conn, person("刘洋", idn, phone="13600001111", birth_date=date(1992, 7, 14)),
                                     actor="clerk1")
        sid = await conn.fetchval("SELECT id FROM empi_source_record WHERE empi_id = $1", first.person.empi_id)
        # As version 1 stored it: only its exact ID key (say), and the old version number.
        await conn.execute("DELETE FROM empi_block_key WHERE source_record_id = $1", sid)
        await conn.execute("INSERT INTO empi_block_key (key, source_record_id) VALUES ($1, $2)",
                           f"I:resident-id:{idn}", sid)
        await conn.execute("UPDATE empi_source_record SET keys_version = 1 WHERE id = $1", sid)
        typo = person("刘洋", idn[:8] + str((int(idn[8]) + 1) % 10) + idn[9:], birth_date=date(1992, 7, 14))
        assert not await store.find_candidates(conn, typo.match_record(), scorer=store.Scorer())
        assert await store.rekey(conn) >= 1
        assert await store.rekey(conn) == 0
        keys = {r["key"] for r in await conn.fetch("SELECT key FROM empi_block_key WHERE source_record_id = $1",
                                                       sid)}
        assert keys == blocking_keys(person("刘洋", idn, phone="13600001111",
                                            birth_date=date(1992, 7, 14)).match_record())
        found = await store.find_candidates(conn, typo.match_record(), scorer=store.Scorer())
        assert found and found[0].empi_id == first.person.empi_id
        assert await conn.fetchval("SELECT min(keys_version) FROM empi_source_record") == KEYS_VERSION
