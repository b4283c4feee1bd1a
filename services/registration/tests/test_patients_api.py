"""Registration API over HTTP: register/link/twins, search, review list, merge/unmerge, orders, FHIR, roles, audit."""

from __future__ import annotations

from imaging_testing.fhir import r4b
from regtest_helpers import auth, events, rid, uname, wait_published


async def test_routes_require_a_token_and_a_role(client, settings) -> None:
    r = await client.get("/api/registration/patients", params={"q": "x"})
    assert r.status_code == 401
    r = await client.post("/api/registration/patients", json={"name": "张三"},
                          headers=auth(settings, "radiologist"))
    assert r.status_code == 403
    r = await client.post("/api/registration/orders", json={}, headers=auth(settings, "technologist"))
    assert r.status_code == 403


async def test_register_link_typo_and_keep_twin_apart(client, settings, pool) -> None:
    h = auth(settings)
    name, idn = uname(), rid(born="19880808")
    body = {"name": name, "sex": "M", "phone": "13812340000", "identifiers": [{"type": "resident-id", "value": idn}]}
    r = await client.post("/api/registration/patients", json=body, headers=h)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["outcome"] == "created" and first["patient"]["birth_date"] == "1988-08-08"
    empi = first["patient"]["empi_id"]
    assert (await events(pool, "patient.registered", empi))[0]["data"]["patient"]["id_number_masked"].count("*") == 10
    await wait_published(pool, "patient.registered", empi)

    # The desk refuses an ID with a wrong digit (the clerk can fix it) with a problem+json 422...
    typo = idn[:12] + str((int(idn[12]) + 1) % 10) + idn[13:]
    r = await client.post("/api/registration/patients", json={**body, "identifiers": [{"value": typo}]}, headers=h)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert typo not in r.text
    r = await client.post("/api/registration/patients", headers=h,
                          json={**body, "identifiers": [{"type": "library-card", "value": "123"}]})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "type"
    # ...and the same person in traditional characters, with a new phone, is linked, not duplicated.
    from opencc import OpenCC
    r = await client.post("/api/registration/patients", headers=h, json={
        **body, "name": OpenCC("s2t").convert(name), "phone": "13900001111"})
    assert r.json()["outcome"] == "linked" and r.json()["patient"]["empi_id"] == empi
    assert r.json()["patient"]["phone"] == "13900001111"
    assert (await events(pool, "patient.updated", empi))[-1]["data"]["changed"] == ["phone"]

    # A twin: same birth date, phone and family; consecutive ID number.
    twin_id = rid(idn[:6], "19880808", (int(idn[14:17]) + 2) % 1000)
    r = await client.post("/api/registration/patients", headers=h, json={
        **body, "name": name[:-1] + "瑜", "identifiers": [{"value": twin_id}]})
    assert r.json()["outcome"] == "created" and r.json()["patient"]["empi_id"] != empi

    # The clerk picks the person in the same-name panel: linked to them whatever the score.
    r = await client.post("/api/registration/patients", headers=h, json={
        "name": name, "phone": "13912121212", "link_to": empi})
    assert r.json()["outcome"] == "linked" and r.json()["patient"]["empi_id"] == empi
    r = await client.post("/api/registration/patients", headers=h, json={"name": name, "link_to": "NOPE"})
    assert r.status_code == 404

    # Search by name, pinyin, ID number and phone; lists show masked numbers only.
    for q in (name, first["patient"]["name_latin"].replace("^", " ").lower(), idn, "13912121212"):
        found = (await client.get("/api/registration/patients", params={"q": q}, headers=h)).json()
        assert empi in [p["empi_id"] for p in found["data"]], q
        assert idn not in str(found)
    found = (await client.post("/api/registration/patients/search", json={"q": idn}, headers=h)).json()
    assert [p["empi_id"] for p in found["data"]] == [empi]
    # Every read is audited.
    count = await pool.fetchval("SELECT count(*) FROM audit.audit_log WHERE entity = 'patient' AND action = 'search'")
    assert count >= 4


async def test_review_list_resolve_merge_then_unmerge(client, settings, pool) -> None:
    h = auth(settings)
    name = uname()
    a = (await client.post("/api/registration/patients", headers=h, json={
        "name": name, "birth_date": "1970-01-02", "sex": "F"})).json()
    b = (await client.post("/api/registration/patients", headers=h, json={
        "name": name, "birth_date": "1970-01-02", "sex": "F", "phone": "13655556666"})).json()
    assert b["outcome"] == "created" and len(b["review_ids"]) == 1
    preview = (await client.post("/api/registration/patients/match", headers=h, json={
        "name": name, "birth_date": "1970-01-02", "sex": "F"})).json()
    assert {p["patient"]["empi_id"] for p in preview["data"]} >= {a["patient"]["empi_id"], b["patient"]["empi_id"]}
    reviews = (await client.get("/api/registration/reviews", headers=h)).json()["data"]
    item = next(r for r in reviews if r["id"] == b["review_ids"][0])
    assert item["explanation"]["fields"]["name"]["level"] == "exact"
    r = await client.post(f"/api/registration/reviews/{item['id']}/resolve", headers=h,
                          json={"decision": "merge", "survivor": a["patient"]["empi_id"]})
    assert r.status_code == 200, r.text
    merged = await events(pool, "patient.merged", a["patient"]["empi_id"])
    assert merged[-1]["data"]["merged_empi_ids"] == [b["patient"]["empi_id"]]
    again = await client.post(f"/api/registration/reviews/{item['id']}/resolve", headers=h, json={"decision": "merge"})
    assert again.status_code == 409
    # The merged id still resolves (to the survivor); unmerge is for admins.
    got = (await client.get(f"/api/registration/patients/{b['patient']['empi_id']}", headers=h)).json()
    assert got["empi_id"] == a["patient"]["empi_id"] and got["phone"] == "13655556666"
    r = await client.post(f"/api/registration/patients/{b['patient']['empi_id']}/unmerge", headers=h,
                          json={"reason": "两个人"})
    assert r.status_code == 403
    r = await client.post(f"/api/registration/patients/{b['patient']['empi_id']}/unmerge",
                          headers=auth(settings, "admin", username="admin-test"), json={"reason": "两个人"})
    assert r.status_code == 200 and r.json()["restored"]["phone"] == "13655556666"
    hist = (await client.get(f"/api/registration/patients/{a['patient']['empi_id']}/history", headers=h)).json()
    assert [x["action"] for x in hist["data"]][-2:] == ["merge", "unmerge"]


async def test_order_emits_order_created_and_fhir_views(client, settings, pool) -> None:
    h = auth(settings)
    idn = rid()
    p = (await client.post("/api/registration/patients", headers=h, json={
        "name": uname(), "identifiers": [{"value": idn}], "verified": True})).json()["patient"]
    r = await client.post(f"/api/registration/patients/{p['empi_id']}/verifications", headers=h,
                          json={"method": "id-card-reader", "document_type": "resident-id", "document_number": idn})
    assert r.status_code == 201 and r.json()["document_matches"] is True and idn not in r.text
    order_body = {
        "empi_id": p["empi_id"], "patient_class": "inpatient", "ward": "呼吸科病区", "bed": "12",
        "ordering_doctor": "李医生", "ordering_department": "呼吸内科", "clinical_diagnosis": "肺部感染",
        "history": "咳嗽两周", "purpose": "排除肺结核",
        "items": [{"code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT", "body_part": "CHEST"}],
        "special": {"infectious": True, "notes": "疑似结核"}, "priority": "urgent",
    }
    r = await client.post("/api/registration/orders", headers=h, json=order_body)
    assert r.status_code == 201, r.text
    order = r.json()
    assert len(order["accession_number"]) <= 16 and order["study_instance_uid"].startswith("2.25.")
    ev = (await events(pool, "order.created", order["accession_number"]))[0]["data"]
    assert ev["special"]["infectious"] is True and ev["patient"]["empi_id"] == p["empi_id"]
    assert ev["items"][0]["modality"] == "CT" and ev["ordering_department"] == "呼吸内科"
    await wait_published(pool, "order.created", order["accession_number"])
    r = await client.post("/api/registration/orders", headers=h, json={**order_body, "items": []})
    assert r.status_code == 422
    r = await client.post("/api/registration/orders", headers=h, json={**order_body, "empi_id": "NOPE"})
    assert r.status_code == 404

    fh = auth(settings, "clinician", username="dr-test")
    pat = r4b(await client.get(f"/fhir/R4/Patient/{p['empi_id']}", headers=fh), resource_type="Patient")
    assert {"system": "urn:imaging:id:resident-id", "value": idn} in pat["identifier"]
    bundle = r4b(await client.get("/fhir/R4/Patient", headers=fh,
                                  params={"identifier": f"urn:imaging:id:resident-id|{idn}"}), resource_type="Bundle")
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["id"] == p["empi_id"]
    assert bundle["entry"][0]["fullUrl"].endswith(f"/fhir/R4/Patient/{p['empi_id']}")
    assert idn not in str(bundle["entry"])  # a search shows ID numbers masked
    by_name = r4b(await client.get("/fhir/R4/Patient", headers=fh, params={"name": p["name"]}))
    assert p["empi_id"] in [e["resource"]["id"] for e in by_name["entry"]]
    r4b(await client.get("/fhir/R4/Patient", headers=fh), status=400)
    sr = r4b(await client.get(f"/fhir/R4/ServiceRequest/{order['order_id']}", headers=fh),
             resource_type="ServiceRequest")
    assert sr["priority"] == "urgent"
    assert sr["subject"]["reference"] == f"Patient/{p['empi_id']}"
    assert any("传染病" in n["text"] for n in sr["note"])
    by_acc = r4b(await client.get("/fhir/R4/ServiceRequest", headers=fh,
                                  params={"identifier": order["accession_number"]}), resource_type="Bundle")
    assert by_acc["total"] == 1 and by_acc["entry"][0]["resource"]["id"] == order["order_id"]
    by_subject = r4b(await client.get("/fhir/R4/ServiceRequest", headers=fh,
                                      params={"subject": f"Patient/{p['empi_id']}"}), resource_type="Bundle")
    assert [e["resource"]["id"] for e in by_subject["entry"]] == [order["order_id"]]
    missing = r4b(await client.get("/fhir/R4/Patient/NOPE", headers=fh), status=404)
    assert missing["issue"][0]["code"] == "not-found"
    # Errors under the base are OperationOutcomes too: no token, a role that may not read, a bad _count.
    assert r4b(await client.get(f"/fhir/R4/Patient/{p['empi_id']}"), status=401)["issue"][0]["code"] == "login"
    r4b(await client.get(f"/fhir/R4/Patient/{p['empi_id']}", headers=auth(settings, "it-ops")), status=403)
    r4b(await client.get("/fhir/R4/Patient", headers=fh, params={"name": p["name"], "_count": "0"}), status=422)
    # The former base answers 308 to the new one, query kept.
    moved = await client.get("/api/registration/fhir/Patient", headers=fh, params={"name": p["name"]})
    assert moved.status_code == 308
    assert moved.headers["location"] == f"/fhir/R4/Patient?{moved.request.url.query.decode()}"
    listed = (await client.get("/api/registration/orders", params={"empi_id": p["empi_id"]}, headers=h)).json()
    assert listed["count"] == 1


async def test_names_stored_before_the_counts_are_counted_in_the_background(app, client, settings, pool) -> None:
    """An upgrade finds source records without name counts: the service counts them after starting
    (the registrations it stores itself are counted as they are stored)."""
    from registration.adapters.name_counts import count_stored_names
    application, _ = app
    ctx = application.state.ctx
    await ctx.extras["name_counts"]  # the start-up pass is over
    r = await client.post("/api/registration/patients", headers=auth(settings),
                          json={"name": uname(), "identifiers": [{"type": "resident-id", "value": rid()}]})
    assert r.status_code == 201, r.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM empi_source_record WHERE NOT name_counted") == 0
        before = await conn.fetchval("SELECT n FROM empi_name_count WHERE script = 'H' AND kind = 'length' "
                                     "AND value = '2'") or 0
        await conn.execute("UPDATE empi_source_record SET name_counted = false WHERE empi_id = $1",
                           r.json()["patient"]["empi_id"])
        await conn.execute("UPDATE empi_name_count SET n = n - 1 WHERE script = 'H' AND kind = 'length' "
                           "AND value = '2'")
    assert await count_stored_names(ctx) == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT n FROM empi_name_count WHERE script = 'H' AND kind = 'length' "
                                   "AND value = '2'") == before


async def test_a_homophone_re_registration_never_renames_the_patient_silently(client, settings, pool) -> None:
    """张子寒 registered with 张子涵's ID number: linked to them, but the name waits for the desk, which sees
    the old and the new name and decides; only a yes changes the record everywhere (patient.updated)."""
    h = auth(settings)
    tag = uname()[-3:]
    idn = rid(born="19920304")
    r = await client.post("/api/registration/patients", headers=h, json={
        "name": f"张子涵{tag}", "sex": "F", "identifiers": [{"type": "resident-id", "value": idn}]})
    empi = r.json()["patient"]["empi_id"]
    await wait_published(pool, "patient.registered", empi)
    r = await client.post("/api/registration/patients", headers=h, json={
        "name": f"张子寒{tag}", "sex": "F", "phone": "13811112222",
        "identifiers": [{"type": "resident-id", "value": idn}]})
    res = r.json()
    assert r.status_code == 201 and res["outcome"] == "pending", r.text
    assert res["patient"]["name"] == f"张子涵{tag}" and res["patient"]["phone"] is None  # nothing applied yet
    assert res["pending"]["changes"] == {"name": [f"张子涵{tag}", f"张子寒{tag}"]}
    assert await events(pool, "patient.updated", empi) == []
    listed = (await client.get("/api/registration/pending-changes", headers=h)).json()["data"]
    mine = next(c for c in listed if c["empi_id"] == empi)
    assert mine["changes"] == {"name": [f"张子涵{tag}", f"张子寒{tag}"]} and mine["id"] == res["pending"]["id"]
    assert await pool.fetchval("SELECT count(*) FROM audit.audit_log WHERE entity_id = $1 AND action = 'read' "
                               "AND detail->>'pending_change' = $2", empi, mine["id"]) == 1

    # The clerk checks the ID card: the new name is right.
    r = await client.post(f"/api/registration/pending-changes/{mine['id']}/confirm", headers=h)
    assert r.status_code == 200 and r.json()["patient"]["name"] == f"张子寒{tag}", r.text
    assert set(r.json()["changed"]) >= {"name", "phone"}
    [updated] = await events(pool, "patient.updated", empi)
    assert updated["data"]["patient"]["name"] == f"张子寒{tag}"
    again = await client.post(f"/api/registration/pending-changes/{mine['id']}/confirm", headers=h)
    assert again.status_code == 404  # decided once

    # A wrong one is rejected: the record stays as it is; a clerk who saw both may also confirm at once.
    r = await client.post("/api/registration/patients", headers=h, json={
        "name": f"张紫寒{tag}", "sex": "F", "identifiers": [{"type": "resident-id", "value": idn}]})
    assert r.json()["outcome"] == "pending"
    r = await client.post(f"/api/registration/pending-changes/{r.json()['pending']['id']}/reject", headers=h)
    assert r.status_code == 200 and r.json()["patient"]["name"] == f"张子寒{tag}" and r.json()["changed"] == []
    r = await client.post("/api/registration/patients", headers=h, json={
        "name": f"张梓寒{tag}", "sex": "F", "confirm_changes": True,
        "identifiers": [{"type": "resident-id", "value": idn}]})
    assert r.json()["outcome"] == "linked" and r.json()["patient"]["name"] == f"张梓寒{tag}"
    r = await client.get("/api/registration/pending-changes", headers=auth(settings, "radiologist"))
    assert r.status_code == 403


async def test_order_change_says_what_changed_and_refuses_what_cannot(client, settings, pool) -> None:
    h = auth(settings)
    p = (await client.post("/api/registration/patients", headers=h, json={
        "name": uname(), "identifiers": [{"value": rid()}]})).json()["patient"]
    order = (await client.post("/api/registration/orders", headers=h, json={
        "empi_id": p["empi_id"], "ordering_department": "呼吸内科",
        "items": [{"code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT"}]})).json()
    acc = order["accession_number"]
    url = f"/api/registration/orders/{acc}/change"
    r = await client.post(url, headers=h, json={"reason": "改为急诊", "priority": "stat", "ward": "急诊观察室"})
    assert r.status_code == 200 and sorted(r.json()["changed"]) == ["priority", "ward"], r.text
    [changed] = await events(pool, "order.changed", acc)
    assert changed["data"]["ordering_department"] == "呼吸内科"  # unchanged fields ride along: a whole order
    r = await client.post(url, headers=h, json={"reason": "再说一次", "priority": "stat"})
    assert r.status_code == 200 and r.json()["changed"] == []
    assert len(await events(pool, "order.changed", acc)) == 1  # nothing new, nothing announced
    for body in ({"reason": "x"}, {"priority": "stat"}, {"reason": "x", "empi_id": "E1"},
                 {"reason": "x", "accession_number": "A1"}, {"reason": "x", "items": []}):
        r = await client.post(url, headers=h, json=body)
        assert r.status_code == 422, (body, r.text)
    r = await client.post(url, headers=auth(settings, "radiologist"), json={"reason": "x", "priority": "urgent"})
    assert r.status_code == 403
    r = await client.post("/api/registration/orders/NO-SUCH/change", headers=h, json={"reason": "x", "bed": "1"})
    assert r.status_code == 404
    await client.post(f"/api/registration/orders/{acc}/cancel", headers=h, json={"reason": "取消"})
    r = await client.post(url, headers=h, json={"reason": "x", "priority": "urgent"})
    assert r.status_code == 409 and "cancelled" in r.text
