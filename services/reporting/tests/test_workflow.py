"""The report lifecycle table, and a report walked through every state over the API with each
wrong role refused."""

from __future__ import annotations

import pytest
from reporting.domain.states import TRANSITIONS, Action, InvalidTransition, State, next_state
from reporting.domain.workflow import RULES, Grade, NotPermitted, allowed_actions, grades_of, transition

from .conftest import CONTENT, Service, World
from .peers import wait_for


def test_every_state_but_the_ends_has_a_way_out() -> None:
    sources = {s for (s, _) in TRANSITIONS}
    for state in State:
        if state not in (State.WITHDRAWN, State.CANCELLED):
            assert state in sources, state


def test_every_step_says_who_may_take_it() -> None:
    assert RULES.keys() == TRANSITIONS.keys()
    assert next_state(State.AMENDING, Action.SIGN_AMENDED) == State.FINAL
    with pytest.raises(InvalidTransition, match="cannot final a report in state draft; possible: cancel, "
                                                "preliminary, save"):
        next_state(State.DRAFT, Action.FINAL)


def test_trainee_only_drafts() -> None:
    trainee = frozenset({Grade.TRAINEE})
    assert transition(State.NONE, Action.SAVE, trainee).new_state == State.DRAFT
    with pytest.raises(NotPermitted):
        transition(State.DRAFT, Action.PRELIMINARY, trainee)
    with pytest.raises(NotPermitted):
        transition(State.PRELIMINARY, Action.SAVE, trainee)
    assert allowed_actions(State.DRAFT, trainee) == ["save"]


def test_final_needs_a_senior_and_a_preliminary() -> None:
    with pytest.raises(NotPermitted):
        transition(State.PRELIMINARY, Action.FINAL, frozenset({Grade.RADIOLOGIST}))
    with pytest.raises(InvalidTransition):
        transition(State.DRAFT, Action.FINAL, frozenset({Grade.SENIOR}))
    assert transition(State.PRELIMINARY, Action.FINAL, frozenset({Grade.SENIOR})).signs == "final"


def test_grades_from_roles_and_register() -> None:
    assert grades_of(("radiologist",), "trainee") == {Grade.TRAINEE}
    assert grades_of(("radiologist",), "ai") == {Grade.TRAINEE}
    assert grades_of(("radiologist",), None) == {Grade.RADIOLOGIST}
    assert grades_of(("senior-radiologist", "radiologist"), None) == {Grade.SENIOR, Grade.RADIOLOGIST}
    assert grades_of(("clinician",), None) == {Grade.CLINICIAN}


async def test_walk_every_state_over_the_api(service: Service, world: World) -> None:
    svc = service
    admin = svc.auth("admin", username="admin")
    trainee_name, ai_name = f"trainee-{world.tag}", f"ai-{world.tag}"
    for name, kind in ((trainee_name, "trainee"), (ai_name, "ai")):
        r = await svc.client.put(f"/api/reporting/reporters/{name}", headers=admin, json={"kind": kind})
        assert r.status_code == 200, r.text
    # Registering reporters is an admin's job.
    r = await svc.client.put("/api/reporting/reporters/x", headers=svc.auth("radiologist"), json={"kind": "ai"})
    assert r.status_code == 403
    trainee = svc.auth("radiologist", username=trainee_name)
    ai = svc.auth("radiologist", username=ai_name)
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")
    senior = svc.auth("senior-radiologist", username=f"senior-{world.tag}")
    clinician = svc.auth("clinician", username=f"clin-{world.tag}")
    acc = await world.exam()

    assert (await svc.client.post(f"/api/reporting/exams/{acc}/report/save", json={})).status_code == 401
    await world.step(acc, "save", svc.auth("technologist"), expect=403)
    await world.step(acc, "save", clinician, expect=403)  # a clinician may not write a report
    draft = await world.step(acc, "save", ai, content={**CONTENT, "findings": "AI: 右肺上叶结节。"})
    assert draft["state"] == "draft" and draft["version"] == 1
    await world.step(acc, "save", trainee, content=CONTENT)
    await world.step(acc, "preliminary", trainee, expect=403)  # trainees do not sign
    await world.step(acc, "preliminary", ai, expect=403)
    await world.step(acc, "final", senior, expect=409)  # no final without a preliminary
    prelim = await world.step(acc, "preliminary", rad)
    assert prelim["state"] == "preliminary" and prelim["content_sha256"]
    await world.step(acc, "final", rad, expect=403)  # a radiologist does not review his own
    await world.step(acc, "return", rad, expect=403)
    back = await world.step(acc, "return", senior, note="请补充纵隔描述")
    assert back["state"] == "draft"
    await world.step(acc, "preliminary", rad, content={**CONTENT, "findings": CONTENT["findings"] + "纵隔未见异常。"})
    consult = await world.step(acc, "consult", rad, note="疑难病例")
    assert consult["state"] == "consultation"

    report_id = consult["report_id"]
    r = await svc.client.post(f"/api/reporting/reports/{report_id}/consultation-notes", headers=senior,
                              json={"note": "考虑良性可能大"})
    assert r.status_code == 200, r.text
    await world.step(acc, "close-consultation", rad, expect=403)
    assert (await world.step(acc, "close-consultation", senior))["state"] == "preliminary"
    final = await world.step(acc, "final", senior)
    assert final["state"] == "final"
    await world.step(acc, "save", senior, content=CONTENT, expect=409)  # signed: only an amendment changes it

    # Amendment: request (clinician) -> review (senior only) -> amend -> re-sign (senior).
    url = f"/api/reporting/reports/{report_id}/amendments"
    r = await svc.client.post(url, headers=svc.auth("nurse"), json={"reason": "x" * 5})
    assert r.status_code == 403
    r = await svc.client.post(url, headers=clinician, json={"kind": "corrected", "reason": "部位写错，应为左肺"})
    assert r.status_code == 200 and r.json()["state"] == "amendment-requested", r.text
    r = await svc.client.post(url + "/review", headers=rad, json={"approve": True})
    assert r.status_code == 403
    r = await svc.client.post(url + "/review", headers=senior, json={"approve": False, "note": "no error"})
    assert r.json()["state"] == "final"
    r = await svc.client.post(url, headers=clinician, json={"kind": "corrected", "reason": "部位写错，应为左肺"})
    r = await svc.client.post(url + "/review", headers=senior, json={"approve": True})
    assert r.json()["state"] == "amending"
    await world.step(acc, "sign-amended", rad, expect=403)
    amended = {**CONTENT, "findings": "左肺上叶见一结节，大小约12mm。", "impression": "左肺上叶结节。"}
    await world.step(acc, "save", rad, content=amended)
    signed = await world.step(acc, "sign-amended", senior)
    assert signed["state"] == "final"
    await world.step(acc, "withdraw", rad, expect=403)
    assert (await world.step(acc, "withdraw", senior, note="wrong patient"))["state"] == "withdrawn"
    await world.step(acc, "save", senior, content=CONTENT, expect=409)

    # A second exam is cancelled before it is reported.
    acc2 = await world.exam(2)
    await world.step(acc2, "cancel", rad, expect=403)
    cancelled = await world.step(acc2, "cancel", admin)
    assert cancelled["state"] == "cancelled"
    # The HIS learns the order gets no result (OBR-25 X), the FHIR endpoint sees it cancelled.
    await wait_for(lambda: [m.field("OBR", 25) for m in svc.hl7.for_accession(acc2)] == ["X"])
    await wait_for(lambda: svc.fhir.resources.get(f"DiagnosticReport/{cancelled['report_id']}", {}).get("status")
                   == "cancelled")

    history = (await svc.client.get(f"/api/reporting/reports/{report_id}/versions", headers=senior)).json()
    states = [v["state"] for v in history["data"]]
    for state in ("draft", "preliminary", "consultation", "final", "amendment-requested", "amending", "withdrawn"):
        assert state in states
    assert history["data"][0]["saved_by"] == ai_name

    r = await svc.client.get(f"/api/reporting/exams/{acc}", headers=senior)
    assert r.status_code == 200 and r.json()["allowed_actions"] == []


async def test_stale_version_and_unknown_steps_are_refused(service: Service, world: World) -> None:
    rad = service.auth("radiologist", username=f"rad-{world.tag}")
    acc = await world.exam()
    first = await world.step(acc, "save", rad, content=CONTENT)
    await world.step(acc, "save", rad, content=CONTENT, expected_version=first["version"])
    r = await world.step(acc, "save", rad, content=CONTENT, expected_version=first["version"], expect=409)
    assert r["code"] == "report-version-stale", r
    r = await world.step(acc, "sign", rad, expect=404)
    r = await world.step(f"{acc}X", "save", rad, content=CONTENT, expect=404)
    r = await service.client.post(f"/api/reporting/exams/{acc}/report/save", headers=rad,
                                  json={"content": {"findings": 3, "fields": "no"}})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
