"""Which patient a film belongs to (WS/T 597-2018 5.4).

Method 1: the modality sent a Study Instance UID (Film Session N-CREATE, Film Box N-CREATE, Image
Box N-SET, or a Referenced Study Sequence); it names a study the platform knows.
Method 2: no UID came; the technologist laid PatientID and AccessionNumber out on the film and
OCR read them. OCR confuses O/Q/D with 0 (and I/L with 1, S with 5, B with 8...), so both sides
are "folded" to one spelling before comparing, candidates must have the identifiers' format, and
only studies active around the print time are considered. A film is matched only when the
accession number and the patient ID read agree on one study; anything less goes to the review
list with what was read, so nothing is ever attached to the wrong patient silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jellyfish import levenshtein_distance

_FOLD = str.maketrans({"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "|": "1", "Z": "2", "S": "5",
                       "G": "6", "B": "8", "/": "7", "?": "7", "@": "0", "A": "4"})
# Labels technologists put before the identifiers (English and Chinese film layouts).
_PID_LABEL = re.compile(r"(?:PID|PATIENT\s*ID|PAT\s*ID|ID|病人ID|患者ID|病历号)\s*[:：#]?\s*([A-Z0-9]+)", re.I)
_ACC_LABEL = re.compile(r"(?:ACC|ACCESSION(?:\s*(?:NO|NUMBER))?|ACC\s*NO|检查号|流水号)\s*[:：#.]?\s*([A-Z0-9]+)", re.I)


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


@dataclass
class MatchDecision:
    status: str  # "matched" or "review"
    method: str | None  # "study-uid", "ocr"
    study: KnownStudy | None
    confidence: float
    detail: dict[str, Any] = field(default_factory=dict)


def match_by_study_uid(sent: list[str], known: dict[str, KnownStudy]) -> MatchDecision | None:
    """Method 1. None when the modality sent no UID (then method 2 applies)."""
    if not sent:
        return None
    resolved = [known[u] for u in sent if u in known]
    unknown = [u for u in sent if u not in known]
    detail: dict[str, Any] = {"sent_study_uids": sent, "unknown_study_uids": unknown}
    if not resolved:
        return MatchDecision("review", "study-uid", None, 0.0, detail | {"reason": "study-uid-unknown"})
    patients = {s.empi_id for s in resolved}
    if len(patients) > 1:
        return MatchDecision("review", "study-uid", None, 0.0,
                             detail | {"reason": "study-uids-of-different-patients",
                                       "candidates": [s.accession_number for s in resolved]})
    return MatchDecision("matched", "study-uid", resolved[0], 1.0, detail)


def _tokens(text: str) -> tuple[list[str], list[str], list[str]]:
    """(all tokens, labelled patient-id values, labelled accession values), uppercased."""
    upper = text.upper()
    words = re.findall(r"[A-Z0-9|/@?]+", upper)
    tokens = set(words)
    for a, b in zip(words, words[1:], strict=False):  # OCR sometimes splits one identifier in two
        tokens.add(a + b)
    pids = [m.group(1).upper() for m in _PID_LABEL.finditer(upper)]
    accs = [m.group(1).upper() for m in _ACC_LABEL.finditer(upper)]
    return sorted(t for t in tokens if len(t) >= 4), pids, accs


def _well_formed(token: str, pattern: re.Pattern[str]) -> bool:
    """The token could be an identifier of this format once confusable letters are read as digits."""
    return bool(pattern.fullmatch(token)) or bool(pattern.fullmatch(_as_digits_after_prefix(token)))


def _as_digits_after_prefix(token: str) -> str:
    m = re.match(r"([A-Z]{0,3})(.*)", token)
    assert m
    return m.group(1) + m.group(2).translate(_FOLD)


def match_by_ocr(text: str, studies: list[KnownStudy], *, patient_id_pattern: str,
                 accession_pattern: str) -> MatchDecision:
    """Method 2: identifiers read from the film against the studies active around the print time."""
    pid_re, acc_re = re.compile(patient_id_pattern), re.compile(accession_pattern)
    tokens, labelled_pids, labelled_accs = _tokens(text)
    folded = {fold(t): t for t in tokens}
    by_acc: dict[str, list[KnownStudy]] = {}
    by_pid: dict[str, list[KnownStudy]] = {}
    for s in studies:
        by_acc.setdefault(fold(s.accession_number), []).append(s)
        by_pid.setdefault(fold(s.patient_id), []).append(s)
    acc_hits = {s.study_instance_uid: s for f, t in folded.items() if _well_formed(t, acc_re)
                for s in by_acc.get(f, [])}
    pid_hits = {s.empi_id for f, t in folded.items() if _well_formed(t, pid_re) for s in by_pid.get(f, [])}
    detail: dict[str, Any] = {
        "read_patient_ids": labelled_pids, "read_accessions": labelled_accs,
        "candidates": sorted(t for t in tokens if _well_formed(t, pid_re) or _well_formed(t, acc_re))[:20],
        "studies_considered": len(studies),
    }
    agreeing = [s for s in acc_hits.values() if s.empi_id in pid_hits]
    if len(agreeing) == 1:
        study = agreeing[0]
        exact = study.accession_number.upper() in tokens and study.patient_id.upper() in tokens
        return MatchDecision("matched", "ocr", study, 1.0 if exact else 0.95,
                             detail | {"accession_read_as": folded.get(fold(study.accession_number)),
                                       "patient_id_read_as": folded.get(fold(study.patient_id))})
    if not agreeing:
        # One character dropped, doubled or misread beyond the folding, in each identifier: still
        # only a match when a single study has both its accession and its patient ID that close.
        near = [s for s in studies if _near(fold(s.accession_number), folded) and _near(fold(s.patient_id), folded)]
        if len(near) == 1:
            return MatchDecision("matched", "ocr", near[0], 0.9, detail | {"near": True})
    if len(agreeing) > 1:
        reason = "ambiguous"
    elif acc_hits and pid_hits:
        reason = "accession-and-patient-id-disagree"
    elif acc_hits:
        reason = "patient-id-not-read"
    elif pid_hits:
        reason = "accession-not-read"
    else:
        reason = "no-identifier-read"
    suggestions = sorted({s.accession_number for s in acc_hits.values()}
                         | {s.accession_number for s in studies if s.empi_id in pid_hits})[:10]
    return MatchDecision("review", "ocr", None, 0.0, detail | {"reason": reason, "suggestions": suggestions})


def _near(target: str, folded_tokens: dict[str, str]) -> bool:
    return any(abs(len(f) - len(target)) <= 1 and levenshtein_distance(f, target) <= 1 for f in folded_tokens)
