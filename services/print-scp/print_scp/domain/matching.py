"""Which patient a film belongs to (WS/T 597-2018 5.4), decided only on exact, consistent evidence.

Evidence comes from three places, and all of it is weighed every time:
- the Study Instance UIDs the modality sent (method 1: Film Session / Film Box N-CREATE, Image Box
  N-SET, Referenced Study Sequence);
- the text burned into *every* image box, read by OCR box by box (method 2);
- the Annotation Box text, which arrives as text.

A film is attached to a study by exactly two rules, and nothing else:
- ``study-uid``: the UIDs name known studies of one patient, and nothing read on the film names
  another patient, another order, or an identifier nobody knows;
- ``ocr-exact``: no UID came; the accession number and the patient ID of one study were both read,
  and nothing read names another patient, another order or an unknown identifier.
Everything else goes to the review list with its reason, what was read where, and the candidates.
A near miss (an identifier one character off a known one) is a suggestion there, never a match:
one digit is all that separates two patients' numbers.

What counts as "read": a labelled value (after ``PID:``, ``ACC:``, ``检查号`` ...) of the identifier's
format, and any token equal to a known identifier. OCR confuses O/Q/D with 0, I/L with 1, S with 5
and so on, so both sides are *folded* to one spelling before comparing — an exact comparison of
what the characters can be, not a similarity. Unlabelled tokens that equal no known identifier are
not readings: dates, window values and series numbers fit loose identifier formats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jellyfish import levenshtein_distance

_FOLD = str.maketrans({"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "|": "1", "Z": "2", "S": "5",
                       "G": "6", "B": "8", "/": "7", "?": "7", "@": "0", "A": "4"})
# Labels technologists put before the identifiers (English and Chinese film layouts). The value
# must follow the label directly (a separator at most), and a label is a word of its own.
_PID_LABEL = re.compile(  # not "Study ID" / "Series ID", which modalities burn in too
    r"(?<![A-Z0-9])(?<!STUDY )(?<!STUDY)(?<!SERIES )(?<!SERIES)"
    r"(?:PATIENT\s*ID|PAT\s*ID|PID|ID|病人ID|患者ID|病历号|登记号)\s*[:：#]?\s*([A-Z0-9]{4,})", re.I)
_ACC_LABEL = re.compile(
    r"(?<![A-Z0-9])(?:ACCESSION\s*(?:NO\.?|NUMBER)?|ACC\s*NO\.?|ACC|检查号|流水号)\s*[:：#.]?\s*([A-Z0-9]{4,})",
    re.I)


def fold(value: str) -> str:
    """One spelling for characters OCR takes for each other: 'P0O12' and 'PO012' fold alike."""
    return value.upper().translate(_FOLD)


@dataclass(frozen=True)
class KnownStudy:
    study_instance_uid: str
    accession_number: str
    patient_id: str
    empi_id: str
    patient_name: str

    def public(self) -> dict[str, str]:
        return {"study_instance_uid": self.study_instance_uid, "accession_number": self.accession_number,
                "patient_id": self.patient_id, "patient_name": self.patient_name}


@dataclass
class MatchDecision:
    status: str  # "matched" or "review"
    method: str | None  # "study-uid", "ocr", "manual"
    study: KnownStudy | None
    confidence: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """One piece of text on the film that may name a patient: an image box's OCR or an annotation."""

    name: str  # "box 1", "annotation"
    text: str


@dataclass
class Reading:
    """What one source names: known identifiers read, and labelled values nobody knows."""

    source: str
    accessions: list[KnownStudy] = field(default_factory=list)  # studies whose accession was read
    patient_ids: list[KnownStudy] = field(default_factory=list)  # studies whose patient's ID was read
    unknown_patient_ids: list[str] = field(default_factory=list)  # labelled, well-formed, known to no study
    unknown_accessions: list[str] = field(default_factory=list)
    near: list[KnownStudy] = field(default_factory=list)  # one character off: suggestions only

    @property
    def empty(self) -> bool:
        return not (self.accessions or self.patient_ids or self.unknown_patient_ids or self.unknown_accessions)

    def public(self) -> dict[str, Any]:
        return {"source": self.source,
                "accessions": sorted({s.accession_number for s in self.accessions}),
                "patient_ids": sorted({s.patient_id for s in self.patient_ids}),
                "unknown_patient_ids": self.unknown_patient_ids, "unknown_accessions": self.unknown_accessions}


class StudyIndex:
    """The studies a film may belong to, by folded accession number and folded patient ID."""

    def __init__(self, studies: Iterable[KnownStudy], *, patient_id_pattern: str, accession_pattern: str) -> None:
        self.studies = {s.study_instance_uid: s for s in studies}
        self.pid_re, self.acc_re = re.compile(patient_id_pattern), re.compile(accession_pattern)
        self.by_acc: dict[str, list[KnownStudy]] = {}
        self.by_pid: dict[str, list[KnownStudy]] = {}
        for s in self.studies.values():
            self.by_acc.setdefault(fold(s.accession_number), []).append(s)
            self.by_pid.setdefault(fold(s.patient_id), []).append(s)

    def read(self, source: Source) -> Reading:
        upper = source.text.upper()
        words = re.findall(r"[A-Z0-9|/@?]+", upper)
        tokens = set(words) | {a + b for a, b in zip(words, words[1:], strict=False)}  # OCR splits some IDs
        reading = Reading(source.name)
        for token in sorted(tokens):
            f = fold(token)
            if _well_formed(token, self.acc_re):
                reading.accessions += [s for s in self.by_acc.get(f, []) if s not in reading.accessions]
            if _well_formed(token, self.pid_re):
                reading.patient_ids += [s for s in self.by_pid.get(f, []) if s not in reading.patient_ids]
        for m in _PID_LABEL.finditer(upper):
            value = m.group(1)
            if _well_formed(value, self.pid_re) and fold(value) not in self.by_pid \
                    and value not in reading.unknown_patient_ids:
                reading.unknown_patient_ids.append(value)
        for m in _ACC_LABEL.finditer(upper):
            value = m.group(1)
            if _well_formed(value, self.acc_re) and fold(value) not in self.by_acc \
                    and value not in reading.unknown_accessions:
                reading.unknown_accessions.append(value)
        for value in reading.unknown_patient_ids + reading.unknown_accessions:
            reading.near += [s for s in self._near(fold(value)) if s not in reading.near]
        return reading

    def _near(self, folded: str) -> list[KnownStudy]:
        out = []
        for key, studies in (*self.by_acc.items(), *self.by_pid.items()):
            if abs(len(key) - len(folded)) <= 1 and levenshtein_distance(key, folded) <= 1:
                out += studies
        return out


def _well_formed(token: str, pattern: re.Pattern[str]) -> bool:
    """The token could be an identifier of this format once confusable letters are read as digits."""
    return bool(pattern.fullmatch(token)) or bool(pattern.fullmatch(_as_digits_after_prefix(token)))


def _as_digits_after_prefix(token: str) -> str:
    m = re.match(r"([A-Z]{0,3})(.*)", token)
    assert m
    return m.group(1) + m.group(2).translate(_FOLD)


def decide(sent_uids: list[str], uid_studies: dict[str, KnownStudy], readings: list[Reading],
           *, studies_considered: int = 0, cancelled_uids: Iterable[str] = ()) -> MatchDecision:
    """The decision over all the evidence; the detail records the evidence and the rule (or reason)."""
    detail: dict[str, Any] = {
        "sent_study_uids": sent_uids, "unknown_study_uids": [u for u in sent_uids if u not in uid_studies],
        "readings": [r.public() for r in readings if not r.empty],
        "read_patient_ids": sorted({s.patient_id for r in readings for s in r.patient_ids}
                                   | {v for r in readings for v in r.unknown_patient_ids}),
        "read_accessions": sorted({s.accession_number for r in readings for s in r.accessions}
                                  | {v for r in readings for v in r.unknown_accessions}),
        "studies_considered": studies_considered,
    }

    def review(reason: str, explanation: str, candidates: Iterable[KnownStudy] = ()) -> MatchDecision:
        shown = _unique(candidates)
        near = _unique(s for r in readings for s in r.near)
        return MatchDecision("review", "study-uid" if sent_uids else "ocr", None, 0.0, detail | {
            "reason": reason, "explanation": explanation, "candidates": [s.public() for s in shown],
            "suggestions": [s.accession_number for s in _unique([*shown, *near])][:10],
            "near_misses": [s.public() for s in near][:10],
        })

    read_studies = _unique(s for r in readings for s in r.accessions)
    read_patients = _unique(s for r in readings for s in r.patient_ids)
    unknown = sorted({v for r in readings for v in r.unknown_patient_ids + r.unknown_accessions})

    if sent_uids:
        resolved = [uid_studies[u] for u in sent_uids if u in uid_studies]
        cancelled = [u for u in sent_uids if u in set(cancelled_uids)]
        if cancelled:
            detail["cancelled_study_uids"] = cancelled
            return review("order-cancelled", "a Study Instance UID sent belongs to a cancelled order", resolved)
        if not resolved:
            return review("study-uid-unknown", "modality sent a Study Instance UID no order has (yet)")
        if len(resolved) < len(sent_uids):
            return review("study-uid-partly-unknown", "some Study Instance UIDs sent name no known order", resolved)
        if len({s.empi_id for s in resolved}) > 1:
            return review("conflict", "Study Instance UIDs sent belong to different patients", resolved)
        target = resolved[0]
        other_orders = [s for s in read_studies if s not in resolved]
        other_patients = [s for s in read_patients if s.empi_id != target.empi_id]
        if other_orders or other_patients:
            detail["conflict"] = "study-uid-vs-burned-in"
            return review("conflict", "the film's text names another patient or order than its Study Instance UID",
                          [target, *other_orders, *other_patients])
        if unknown:
            detail["conflict"] = "study-uid-vs-burned-in"
            return review("conflict", f"the film's text names {', '.join(unknown)}, which is not the patient or "
                          "order of its Study Instance UID", [target])
        detail["rule"] = "study-uid"
        detail["confirmed_by_text"] = bool(read_studies or read_patients)
        return MatchDecision("matched", "study-uid", target, 1.0, detail)

    if not read_studies and not read_patients and not unknown:
        return review("no-identifier-read", "no patient ID or accession number could be read on the film")
    if len({s.empi_id for s in [*read_studies, *read_patients]}) > 1:
        detail["conflict"] = "identifiers-disagree"
        return review("conflict", "identifiers read on the film belong to different patients",
                      [*read_studies, *read_patients])
    if unknown:
        return review("identifier-not-known", f"read {', '.join(unknown)}: no order in the time window has it",
                      [*read_studies, *read_patients])
    if len(read_studies) > 1:
        return review("ambiguous", "accession numbers of several orders were read", read_studies)
    if not read_studies:
        return review("accession-not-read", "the patient ID was read but no accession number",
                      _unique(read_patients))
    if not read_patients:
        return review("patient-id-not-read", "the accession number was read but not the patient ID", read_studies)
    detail["rule"] = "ocr-exact"
    return MatchDecision("matched", "ocr", read_studies[0], 1.0, detail)


def _unique(studies: Iterable[KnownStudy]) -> list[KnownStudy]:
    seen: dict[str, KnownStudy] = {}
    for s in studies:
        seen.setdefault(s.study_instance_uid, s)
    return list(seen.values())
