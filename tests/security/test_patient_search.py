"""Patient search cannot dump the register (issue 18, 4): criteria empty once normalised are refused,
LIKE's characters are literal, results are capped and masked, and each patient returned is audited."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from security.conftest import Sandbox

SEARCH = "/fhir/R4/Patient"


async def _register(api: httpx.AsyncClient, box: Sandbox, name: str, id_number: str) -> str:
    r = await api.post("/api/registration/patients", headers=box.headers("clerk"), json={
        "name": name, "phone": "13912345678", "address": "北京市朝阳区建国路88号", "force_new": True,
        "identifiers": [{"type": "resident-id", "value": id_number}]})
    assert r.status_code == 201, r.text
    return str(r.json()["patient"]["empi_id"])


async def test_patient_search_cannot_dump_the_register(sandbox: Sandbox) -> None:
    box = sandbox
    surname = "澹台"  # rare: no other test's patients share it
    given = uuid.uuid4().hex[:2]
    async with httpx.AsyncClient(base_url=box.url, timeout=30) as api:
        empi = await _register(api, box, f"{surname}静{given}", "11010519491231002X")
        tech = box.headers("technologist")
        for junk in ("-", "%", "_", "  ", "%%", "*", "|"):
            for param in ("name", "family"):
                r = await api.get(SEARCH, params={param: junk}, headers=tech)
                assert r.status_code == 400, (param, junk, r.text)
                assert r.json()["resourceType"] == "OperationOutcome"
            # An identifier is compared whole: junk finds nobody, an empty one is refused.
            r = await api.get(SEARCH, params={"identifier": junk}, headers=tech)
            assert r.status_code == 400 if not junk.strip(" |") else r.json()["total"] == 0, (junk, r.text)
        # The desk's own search lists nobody for them either.
        for junk in ("-", "%", "_", "%%", "澹"):
            r = await api.get("/api/registration/patients", params={"q": junk}, headers=box.headers("clerk"))
            assert r.status_code == 200 and r.json()["count"] == 0, (junk, r.text)
        r = await api.get(SEARCH, params={"name": "澹"}, headers=tech)  # one character: too wide
        assert r.status_code == 400
        r = await api.get(SEARCH, params={"name": "澹台%"}, headers=tech)  # the % is dropped, not a wildcard
        assert r.status_code == 200 and empi in r.text
        r = await api.get(SEARCH, params={"name": "澹_"}, headers=tech)
        assert r.status_code == 400  # '_' is not a character of a name: "澹" alone is too wide
        assert (await api.get(SEARCH, params={"name": surname, "_count": 51}, headers=tech)).status_code == 422

        r = await api.get(SEARCH, params={"name": surname}, headers=tech)
        assert r.status_code == 200
        [entry] = [e for e in r.json()["entry"] if e["resource"]["id"] == empi]
        patient = entry["resource"]
        assert "11010519491231002X" not in r.text and "13912345678" not in r.text and "建国路" not in r.text
        resident = next(i["value"] for i in patient["identifier"] if i["system"].endswith("resident-id"))
        assert resident == "1101**********002X" and patient["telecom"][0]["value"] == "139****5678"
        # A single read shows the record whole (and is audited as such).
        full = await api.get(f"{SEARCH}/{empi}", headers=tech)
        assert full.status_code == 200 and "11010519491231002X" in full.text

    conn = await asyncpg.connect(box.database_url)
    try:
        await conn.execute("SET search_path TO audit, public")
        returned = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE patient_id = $1 AND detail->>'search_result' = 'true'", empi)
    finally:
        await conn.close()
    assert returned >= 2  # each search that listed the patient, on the patient's own audit trail
