"""Electronic signature: a signed report verifies; a report changed in the database after signing
does not; keys are per user and kept encrypted outside the report; every act is logged."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from reporting.domain import signing

from .conftest import CONTENT, Service, World


def test_private_key_round_trip_needs_the_secret() -> None:
    key = Ed25519PrivateKey.generate()
    blob = signing.encrypt_private(key, "secret-a", "k1")
    assert signing.decrypt_private(blob, "secret-a", "k1").public_key().public_bytes_raw() == \
        key.public_key().public_bytes_raw()
    with pytest.raises(signing.SigningError):
        signing.decrypt_private(blob, "secret-b", "k1")
    with pytest.raises(signing.SigningError):
        signing.decrypt_private(blob, "secret-a", "k2")  # the key id is bound as associated data


async def _signed_report(svc: Service, world: World) -> tuple[str, str, dict[str, str]]:
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")
    senior = svc.auth("senior-radiologist", username=f"senior-{world.tag}")
    acc = await world.exam()
    await world.step(acc, "preliminary", rad, content=CONTENT)
    final = await world.step(acc, "final", senior)
    return acc, final["report_id"], senior


async def test_verify_and_detect_tampering(service: Service, world: World) -> None:
    svc = service
    acc, report_id, senior = await _signed_report(svc, world)
    url = f"/api/reporting/reports/{report_id}/verify"
    assert (await svc.client.get(url, headers=svc.auth("clerk"))).status_code == 403
    r = await svc.client.get(url, headers=svc.auth("clinician", username="clin"))
    body = r.json()
    assert r.status_code == 200 and body["valid"] is True and body["outcome"] == "valid", body
    assert body["kind"] == "final" and body["signer_name"] == f"senior-{world.tag}"
    assert body["signed_sha256"] == body["current_sha256"]

    # Someone edits the signed text straight in the database.
    async with svc.ctx.pool.acquire() as conn:
        version = await conn.fetchval("SELECT signed_version FROM report WHERE id = $1", report_id)
        await conn.execute(
            "UPDATE report_version SET content = jsonb_set(content, '{impression}', to_jsonb('未见异常'::text)) "
            "WHERE report_id = $1 AND version = $2", report_id, version)
    body = (await svc.client.get(url, headers=senior)).json()
    assert body["valid"] is False and body["outcome"] == "tampered"
    assert body["signed_sha256"] != body["current_sha256"]

    # Putting the text back makes it verify again; forging the signed time breaks the signature.
    async with svc.ctx.pool.acquire() as conn:
        await conn.execute(
            "UPDATE report_version SET content = jsonb_set(content, '{impression}', to_jsonb($3::text)) "
            "WHERE report_id = $1 AND version = $2", report_id, version, CONTENT["impression"])
        assert (await svc.client.get(url, headers=senior)).json()["valid"] is True
        await conn.execute("UPDATE signature SET signed_at = signed_at - interval '1 day' WHERE report_id = $1",
                           report_id)
    body = (await svc.client.get(url, headers=senior)).json()
    assert body["valid"] is False and body["outcome"] == "bad-signature"

    log = (await svc.client.get(f"/api/reporting/signature-log?report_id={report_id}", headers=senior)).json()
    outcomes = [row["outcome"] for row in reversed(log["data"])]
    assert outcomes == ["signed", "signed", "valid", "tampered", "valid", "bad-signature"]
    assert (await svc.client.get("/api/reporting/signature-log", headers=svc.auth("radiologist"))).status_code == 403


async def test_keys_are_per_user_and_encrypted_outside_the_report(service: Service, world: World) -> None:
    svc = service
    _, report_id, senior = await _signed_report(svc, world)
    async with svc.ctx.pool.acquire() as conn:
        keys = await conn.fetch("SELECT k.username, k.private_key_enc, k.public_key FROM signing_key k "
                                "JOIN signature s USING (key_id) WHERE s.report_id = $1 ORDER BY s.id", report_id)
        report_row = json.dumps(dict(await conn.fetchrow("SELECT * FROM report WHERE id = $1", report_id)),
                                default=str)
    assert [k["username"] for k in keys] == [f"rad-{world.tag}", f"senior-{world.tag}"]
    for k in keys:
        assert b"PRIVATE KEY" not in bytes(k["private_key_enc"]) and len(bytes(k["private_key_enc"])) > 48
        assert "PRIVATE" not in report_row
    # A revoked key is replaced on the next signature; old signatures still verify.
    listing = (await svc.client.get("/api/reporting/signing-keys", headers=senior)).json()["data"]
    key_id = next(k["key_id"] for k in listing if k["username"] == f"senior-{world.tag}")
    r = await svc.client.post(f"/api/reporting/signing-keys/{key_id}/revoke", headers=svc.auth("admin"))
    assert r.status_code == 200
    body = (await svc.client.get(f"/api/reporting/reports/{report_id}/verify", headers=senior)).json()
    assert body["valid"] is True and body["key_status"] == "revoked"


async def test_keys_need_approval_when_required(service: Service, world: World) -> None:
    """Standard 10.2.4 (1): with approval required, no signature before an administrator approves the key."""
    svc = service
    from reporting.domain import reports
    from reporting.domain.states import Action
    from reporting.domain.workflow import Grade

    username = f"new-{world.tag}"
    actor = reports.Actor(f"uid-{world.tag}", username, "新医生", frozenset({Grade.RADIOLOGIST}))
    acc = await world.exam()

    async def sign() -> None:
        async with svc.ctx.pool.acquire() as conn:
            await reports.act(conn, accession_number=acc, action=Action.PRELIMINARY, actor=actor,
                              content=reports.ReportContent(**CONTENT), require_key_approval=True,
                              signing_secret=svc.settings.reporting_signing_secret)

    with pytest.raises(signing.SigningError, match="no approved signing key"):
        await sign()
    async with svc.ctx.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM report WHERE accession_number = $1", acc) == 0
        async with conn.transaction():
            key = await signing.enrol(conn, user_id=actor.user_id, username=username,
                                      secret=svc.settings.reporting_signing_secret)
    assert key is not None
    with pytest.raises(signing.SigningError, match="awaits approval"):
        await sign()
    url = f"/api/reporting/signing-keys/{key.key_id}/approve"
    assert (await svc.client.post(url, headers=svc.auth("senior-radiologist"))).status_code == 403
    assert (await svc.client.post(url, headers=svc.auth("admin", username="admin"))).status_code == 200
    assert (await svc.client.post(url, headers=svc.auth("admin", username="admin"))).status_code == 404
    await sign()
    keys = (await svc.client.get("/api/reporting/signing-keys", headers=svc.auth("admin"))).json()["data"]
    mine = next(k for k in keys if k["key_id"] == key.key_id)
    assert mine["status"] == "active" and mine["approved_by"] == "admin"
    enrolling = svc.auth("radiologist", username=f"enrol-{world.tag}")
    r = await svc.client.post("/api/reporting/signing-keys", headers=enrolling)
    assert r.status_code == 201 and r.json()["status"] == "active"  # this service does not require approval
    assert (await svc.client.post("/api/reporting/signing-keys", headers=enrolling)).status_code == 409
