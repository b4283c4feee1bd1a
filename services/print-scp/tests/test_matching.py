"""Matching policy (domain): exact, consistent evidence or the review list — never a guess."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from print_scp.domain.matching import KnownStudy, Source, StudyIndex, decide, fold

PID, ACC = r"[A-Z]{0,3}\d{5,12}", r"[A-Z]{0,3}\d{6,14}"
A = KnownStudy("1.1", "A2026000101", "P00012345", "EA", "甲")
A2 = KnownStudy("1.3", "A2026000103", "P00012345", "EA", "甲")  # A's second order
B = KnownStudy("1.2", "A2026000102", "P00012346", "EB", "乙")  # a real look-alike: one digit off A
DAY = [A, A2, B]


def _index(studies: list[KnownStudy] = DAY) -> StudyIndex:
    return StudyIndex(studies, patient_id_pattern=PID, accession_pattern=ACC)


def _decide(boxes: list[str], uids: list[str] = (), studies: list[KnownStudy] = DAY,  # type: ignore[assignment]
            cancelled: list[str] = ()):  # type: ignore[no-untyped-def,assignment]
    index = _index(studies)
    readings = [index.read(Source(f"box {i}", text)) for i, text in enumerate(boxes, 1)]
    by_uid = {s.study_instance_uid: s for s in studies if s.study_instance_uid in uids}
    return decide(list(uids), by_uid, readings, cancelled_uids=cancelled)


def test_exact_ids_match_with_the_rule_and_evidence_recorded() -> None:
    d = _decide(["PID: PO0O12345\nACC: A2O26OOO1O1"])  # OCR's O for 0: the same characters, folded
    assert d.status == "matched" and d.study == A and d.detail["rule"] == "ocr-exact"
    assert d.detail["readings"] == [{"source": "box 1", "accessions": ["A2026000101"], "patient_ids": ["P00012345"],
                                     "unknown_patient_ids": [], "unknown_accessions": []}]
    assert fold("PO0Q12D45") == "P00012045"


def test_near_misses_are_suggestions_never_matches() -> None:
    # Each identifier one digit off A's (an unknown patient): review, A only suggested.
    d = _decide(["PID: P00012347\nACC: A2026000109"], studies=[A])
    assert d.status == "review" and d.detail["reason"] == "identifier-not-known"
    assert "A2026000101" in d.detail["suggestions"] and d.detail["near_misses"][0]["patient_id"] == "P00012345"
    # A character dropped in each: the same.
    d = _decide(["PID: P0001234 ACC: A202600010"], studies=[A])
    assert d.status == "review" and d.study is None


def test_every_box_is_read_and_mixed_patients_go_to_review() -> None:
    d = _decide(["PID: P00012346 ACC: A2026000102", "PID: P00012345 ACC: A2026000101"])
    assert d.status == "review" and d.detail["reason"] == "conflict"
    assert {c["accession_number"] for c in d.detail["candidates"]} >= {"A2026000101", "A2026000102"}
    assert [r["source"] for r in d.detail["readings"]] == ["box 1", "box 2"]
    # A second box with the same patient and order, or with no text at all, agrees.
    assert _decide(["PID: P00012345 ACC: A2026000101", "PID: P00012345", ""]).study == A


def test_study_uid_is_cross_checked_against_the_burned_in_ids() -> None:
    assert _decide([""], uids=["1.1"]).study == A  # nothing read: nothing contradicts the UID
    confirmed = _decide(["PID: P00012345 ACC: A2026000101"], uids=["1.1"])
    assert confirmed.detail["rule"] == "study-uid" and confirmed.detail["confirmed_by_text"]
    conflict = _decide(["PID: P00012346 ACC: A2026000102"], uids=["1.1"])
    assert conflict.status == "review" and conflict.detail["reason"] == "conflict"
    assert conflict.detail["conflict"] == "study-uid-vs-burned-in"
    assert [c["patient_id"] for c in conflict.detail["candidates"]] == ["P00012345", "P00012346"]
    # Another order of the same patient burned in: the film would land in the wrong study.
    assert _decide(["ACC: A2026000103"], uids=["1.1"]).detail["reason"] == "conflict"
    # An identifier nobody knows burned in, not the UID's patient: review too.
    assert _decide(["PID: P99999999"], uids=["1.1"]).detail["reason"] == "conflict"


def test_uid_cases() -> None:
    assert _decide([], uids=["9.9"]).detail["reason"] == "study-uid-unknown"
    assert _decide([], uids=["1.1", "9.9"]).detail["reason"] == "study-uid-partly-unknown"
    assert _decide([], uids=["1.1", "1.2"]).detail["reason"] == "conflict"
    assert _decide([], uids=["1.1", "1.3"]).study == A  # two orders of one patient: the first named
    assert _decide([], uids=["1.1"], cancelled=["1.1"]).detail["reason"] == "order-cancelled"


def test_review_reasons_say_what_was_read() -> None:
    assert _decide(["ACC: A2026000101"]).detail["reason"] == "patient-id-not-read"
    assert _decide(["PID: P00012345"]).detail["reason"] == "accession-not-read"
    assert _decide(["PID: P00012345 A2026000101 A2026000103"]).detail["reason"] == "ambiguous"
    assert _decide([""]).detail["reason"] == "no-identifier-read"
    unknown = _decide(["PID: P77777777 ACC: A7777777777"])
    assert unknown.detail["reason"] == "identifier-not-known"
    assert unknown.detail["read_patient_ids"] == ["P77777777"] and "P77777777" in unknown.detail["explanation"]
    # Study and series numbers, window values and dates are not identifiers.
    assert _decide(["Study ID: 20261123 W:400 L:40 2026-11-23"]).detail["reason"] == "no-identifier-read"


# ---- property: no film is ever attached to a patient other than the one all its evidence names ----

PATIENTS = [KnownStudy(f"1.9.{i}", f"A{2026000200 + i}", f"P{10000100 + i:08d}", f"E{i}", f"患者{i}")
            for i in range(6)]


def _ident(kind: str, study: KnownStudy, label: bool, variant: str, rnd: int) -> tuple[str, str | None]:
    """A text for one identifier and the empi id it names (None: no known patient)."""
    value = study.patient_id if kind == "pid" else study.accession_number
    if variant == "near":  # one digit changed: a patient we do not know
        value = value[:-1] + str((int(value[-1]) + 1 + rnd % 8) % 10)
        named = next((s.empi_id for s in PATIENTS if value in (s.patient_id, s.accession_number)), "unknown")
    elif variant == "unknown":
        value = ("P" if kind == "pid" else "A") + "9" * (8 if kind == "pid" else 10)
        named = "unknown"
    else:
        named = study.empi_id
    prefix = ("PID: " if kind == "pid" else "ACC: ") if label else ""
    return prefix + value, named


# Mostly one patient's film, with now and then another patient's, a near-miss or an unknown identifier.
piece = st.tuples(st.sampled_from(["pid", "acc"]), st.sampled_from([None] * 6 + PATIENTS[1:4]), st.booleans(),
                  st.sampled_from(["exact"] * 6 + ["near", "unknown"]), st.integers(0, 100))
film = st.tuples(st.sampled_from(PATIENTS[:4]), st.lists(st.lists(piece, max_size=3), min_size=1, max_size=4),
                 st.lists(st.sampled_from([None, None, *PATIENTS[:4], KnownStudy("7.7", "X", "X", "EX", "?")]),
                          max_size=2))


@settings(max_examples=400, deadline=None)
@given(film)
def test_no_film_is_attached_to_anyone_its_evidence_does_not_name(spec) -> None:  # type: ignore[no-untyped-def]
    main, boxes_spec, uid_picks = spec
    uid_studies = [main if s is None else s for s in uid_picks]
    named: set[str] = set()
    boxes = []
    for pieces in boxes_spec:
        texts = []
        for kind, other, label, variant, rnd in pieces:
            text, who = _ident(kind, other or main, label, variant, rnd)
            if who is not None and (label or who != "unknown"):  # unlabelled unknown tokens are no evidence
                named.add(who)
            texts.append(text)
        boxes.append("  ".join(texts))
    uids = [s.study_instance_uid for s in uid_studies]
    named |= {s.empi_id if s in PATIENTS else "unknown" for s in uid_studies}
    d = _decide(boxes, uids=uids, studies=PATIENTS)
    if d.status == "matched":
        assert d.study is not None
        assert named == {d.study.empi_id}, (boxes, uids, d.detail)
        if uids:
            assert d.study.study_instance_uid == uids[0]
        else:  # by text alone: both of the study's identifiers were read
            assert d.study.accession_number in "".join(boxes) and d.study.patient_id in "".join(boxes)
