"""Batch matching of legacy patient files: `python -m imaging_common.empi ...`.

    python -m imaging_common.empi dedupe patients.csv -o pairs.csv
    python -m imaging_common.empi link his.csv pacs.csv -o pairs.csv --map name=姓名 --map birth_date=出生日期
    python -m imaging_common.empi dedupe old.csv --map family_name=SURNAME --map given_name=FORENAME \
        --map address=STREET,CITY --map ident:passport=PASSPORT_NO --encoding gb18030

Writes `left_id,right_id,score,band` for the pairs in the chosen bands (default link and review).
Column mapping: `--map FIELD=COLUMN[,COLUMN...]` where FIELD is one of id, name, family_name,
given_name, birth_date, sex, id_number, id_type, phone, address, postcode, or `ident:<type>` for
another identifier column (type as in identifiers.IdType, e.g. ident:hospital-card). Several
columns are joined (address parts). Unmapped fields default to a column of the same name, or
to common headers (姓名, 性别, 出生日期, 身份证号, 电话, 地址, 就诊卡号, 医保卡号...). The Fellegi–Sunter
parameters are estimated by EM on the file's own candidate pairs (files of 5,000 records or more,
or 500 when most names are in Latin script: the shipped defaults were fitted on Chinese registers;
smaller files use the defaults, or `estimate` first) unless --model/--no-estimate.

Progress goes to standard error: a bar on a terminal, a plain line every 10 s otherwise (-q: none).
A malformed row (an unterminated quote, a wrong number of fields) is reported with its line number
and skipped; --strict stops at the first one (exit status 2). The last line sums up the run: records,
candidate pairs, bands, malformed rows, model, time and peak memory.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from imaging_common.csvsafe import SafeWriter
from imaging_common.empi.bands import Band, Thresholds
from imaging_common.empi.comparators import compare
from imaging_common.empi.fellegi_sunter import FellegiSunterModel
from imaging_common.empi.frequencies import NameFrequencies
from imaging_common.empi.identifiers import IdType, parse_id_type
from imaging_common.empi.matcher import ScoredPair, candidate_pairs, dedupe, link_sets, min_records_for_em
from imaging_common.empi.record import MatchRecord

FIELDS = ("id", "name", "family_name", "given_name", "birth_date", "sex", "id_number", "id_type", "phone", "address",
          "postcode")
DEFAULT_HEADERS: dict[str, tuple[str, ...]] = {
    "id": ("id", "record_id", "patient_id", "编号", "病人ID", "病历号"),
    "name": ("name", "full_name", "姓名", "患者姓名", "病人姓名"),
    "family_name": ("family_name", "surname", "last_name", "姓"),
    "given_name": ("given_name", "first_name", "forename", "名"),
    "birth_date": ("birth_date", "dob", "birthdate", "出生日期", "生日"),
    "sex": ("sex", "gender", "性别"),
    "id_number": ("id_number", "id_no", "身份证号", "证件号码", "身份证"),
    "id_type": ("id_type", "证件类型"),
    "phone": ("phone", "mobile", "tel", "电话", "手机", "联系电话"),
    "address": ("address", "地址", "住址", "家庭住址"),
    "postcode": ("postcode", "zip", "邮编"),
    # Other identifiers a legacy file often carries: evidence when two files share them.
    "ident:hospital-card": ("card_number", "hospital_card", "就诊卡号", "诊疗卡号", "卡号"),
    "ident:medical-insurance": ("insurance_number", "medical_insurance", "医保号", "医保卡号", "社保卡号"),
}


class MappingError(ValueError):
    pass


def parse_mapping(items: Sequence[str], header: Sequence[str]) -> dict[str, list[str]]:
    mapping: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise MappingError(f"--map {item!r}: expected FIELD=COLUMN")
        name, cols = item.split("=", 1)
        name = name.strip()
        if name not in FIELDS and not name.startswith("ident:"):
            raise MappingError(f"--map {item!r}: unknown field {name!r} (one of {', '.join(FIELDS)}, ident:<type>)")
        if name.startswith("ident:"):
            parse_id_type(name[6:])
        columns = [c.strip() for c in cols.split(",") if c.strip()]
        missing = [c for c in columns if c not in header]
        if missing:
            raise MappingError(f"--map {item!r}: no column {', '.join(missing)} in the file")
        mapping[name] = columns
    lowered = {h.lower(): h for h in header}
    for name, guesses in DEFAULT_HEADERS.items():
        if name not in mapping:
            for guess in guesses:
                if guess.lower() in lowered:
                    mapping[name] = [lowered[guess.lower()]]
                    break
    if not any(k in mapping for k in ("name", "family_name", "given_name")):
        raise MappingError("no name column: map one with --map name=COLUMN (or family_name/given_name)")
    return mapping


class MalformedCsv(ValueError):
    """A row the CSV reader cannot take (with --strict: the first one stops the run)."""


MAX_QUOTED_LINES = 20  # a quoted field running over more lines than this is an unterminated quote


class Progress:
    """Progress on standard error: a bar redrawn in place on a terminal, plain lines every few seconds
    otherwise (a log file, a CI job). Stages: records read, blocking passes, pairs compared (with ETA)."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True, interval: float | None = None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self._stage = ""
        self._started = self._last = time.monotonic()

    def __call__(self, stage: str, done: int, total: int, unit: str = "pairs") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if stage != self._stage:
            if self.tty and self._stage:
                self.stream.write("\n")
            self._stage, self._started, self._last = stage, now, 0.0
        finished = total > 0 and done >= total
        if now - self._last < self.interval and not finished:
            return
        self._last = now
        if total > 0:
            fraction = min(done / total, 1.0)
            elapsed = now - self._started
            eta = elapsed / fraction * (1 - fraction) if fraction > 0 else 0.0
            figures = f"{done:,}/{total:,} {unit} ({fraction:.0%}), ETA {_clock(eta)}"
        else:
            fraction, figures = 0.0, f"{done:,} {unit}"
        if self.tty:
            bar = "#" * round(fraction * 24) if total > 0 else ""
            self.stream.write(f"\r\x1b[K{stage} [{bar:<24}] {figures}" if total > 0 else f"\r\x1b[K{stage}: {figures}")
        else:
            self.stream.write(f"{stage}: {figures}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._stage:
            self.stream.write("\n")
            self.stream.flush()
        self._stage = ""


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def csv_rows(fh: TextIO, *, delimiter: str, strict: bool = False,
             malformed: list[str] | None = None) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each row; the first row is the header. A malformed row (an unterminated
    quote, a wrong number of fields) is reported in `malformed` as "line N: why" and skipped, the
    lines after it read again on their own; with `strict`, MalformedCsv is raised instead."""
    header_len: int | None = None
    lines = iter(fh)
    pushed: list[tuple[int, str]] = []  # lines to read again after a malformed row, next one last
    lineno = 0

    def next_line() -> tuple[int, str] | None:
        nonlocal lineno
        if pushed:
            return pushed.pop()
        line = next(lines, None)
        if line is None:
            return None
        lineno += 1
        return lineno, line

    def bad(at: int, why: str, pending: list[tuple[int, str]]) -> None:
        message = f"line {at}: {why}"
        if strict:
            raise MalformedCsv(message)
        if malformed is not None:
            malformed.append(message)
        pushed.extend(reversed(pending[1:]))  # the swallowed lines may be good rows

    while True:
        first = next_line()
        if first is None:
            return
        pending = [first]
        quotes = first[1].count('"')
        while quotes % 2 and len(pending) <= MAX_QUOTED_LINES:
            more = next_line()
            if more is None:
                break
            pending.append(more)
            quotes += more[1].count('"')
        at = first[0]
        if quotes % 2:
            bad(at, "unterminated quote (the row's quoted field never ends)", pending)
            continue
        try:
            fields = next(csv.reader([line for _, line in pending], delimiter=delimiter, strict=True), [])
        except csv.Error as exc:
            if len(pending) > 1 and first[1].count('"') % 2:  # its quote closed only by a later row's
                bad(at, f"unterminated quote (the quoted field runs into the next rows: {exc})", pending)
            else:
                bad(at, f"cannot be read as CSV ({exc})", pending)
            continue
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line
        if header_len is None:
            header_len = len(fields)
        elif len(fields) != header_len:
            bad(at, f"{len(fields)} fields where the header has {header_len}", pending)
            continue
        yield at, fields


def read_records(path: Path, mapping_items: Sequence[str], *, encoding: str, delimiter: str,
                 prefix: str = "", strict: bool = False, malformed: list[str] | None = None,
                 progress: Progress | None = None) -> list[MatchRecord]:
    size = path.stat().st_size
    with path.open(newline="", encoding=encoding) as fh:
        rows = csv_rows(fh, delimiter=delimiter, strict=strict, malformed=malformed)
        first = next(rows, None)
        header = first[1] if first else []
        mapping = parse_mapping(mapping_items, header)
        position = {h: k for k, h in enumerate(header)}
        columns = {name: [position[c] for c in cols] for name, cols in mapping.items()}

        def get(fields: list[str], name: str) -> str | None:
            cols = columns.get(name)
            if not cols:
                return None
            if len(cols) == 1:
                return fields[cols[0]].strip() or None
            return "".join(fields[c].strip() for c in cols) or None

        out = []
        for n, (_line, fields) in enumerate(rows, start=1):
            idents: list[tuple[str | IdType, str]] = []
            number = get(fields, "id_number")
            if number:
                try:
                    kind = parse_id_type(get(fields, "id_type"))
                except ValueError:
                    kind = IdType.RESIDENT_ID
                idents.append((kind, number))
            for name in columns:
                if name.startswith("ident:"):
                    value = get(fields, name)
                    if value:
                        idents.append((name[6:], value))
            out.append(MatchRecord.build(
                prefix + (get(fields, "id") or str(n)), name=get(fields, "name"),
                family_name=get(fields, "family_name"), given_name=get(fields, "given_name"),
                birth_date=get(fields, "birth_date"), sex=get(fields, "sex"), identifiers=idents,
                phone=get(fields, "phone"), address=get(fields, "address"), postcode=get(fields, "postcode"),
            ))
            if progress is not None and n % 5000 == 0:
                progress(f"reading {path.name}", fh.buffer.tell(), size, "bytes")  # type: ignore[attr-defined]
        if progress is not None:
            progress(f"reading {path.name}", size, size, f"bytes, {len(out):,} records")
        return out


def write_pairs(pairs: Sequence[ScoredPair], out, bands: set[Band]) -> int:  # type: ignore[no-untyped-def]
    writer = SafeWriter(out)  # ids come from the input files: never a formula in the output
    writer.writerow(["left_id", "right_id", "score", "band"])
    n = 0
    for p in sorted(pairs, key=lambda p: -p.weight):
        if p.band in bands:
            writer.writerow([p.left.ref, p.right.ref, f"{p.weight:.2f}", p.band.value])
            n += 1
    return n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imaging_common.empi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("dedupe", "link", "estimate"):
        p = sub.add_parser(name)
        p.add_argument("files", nargs=2 if name == "link" else 1, type=Path)
        p.add_argument("-o", "--output", type=Path, help="output CSV (default: standard output)")
        p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN")
        p.add_argument("--encoding", default="utf-8-sig", help="e.g. utf-8-sig (default), gb18030")
        p.add_argument("--delimiter", default=",")
        p.add_argument("--model", type=Path, help="Fellegi-Sunter parameters (JSON) instead of EM on the file")
        p.add_argument("--no-estimate", action="store_true", help="use the shipped default parameters")
        p.add_argument("--save-model", type=Path, help="write the parameters used (JSON)")
        p.add_argument("--bands", default="link,review", help="bands to write: link,review,new")
        p.add_argument("--link-threshold", type=float, default=Thresholds.link)
        p.add_argument("--review-threshold", type=float, default=Thresholds.review)
        p.add_argument("--strict", action="store_true", help="stop at the first malformed CSV row (default: report "
                       "it with its line number and go on)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress on standard error")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    progress = Progress(enabled=not args.quiet)
    malformed: list[str] = []
    read = {"encoding": args.encoding, "delimiter": args.delimiter, "strict": args.strict, "malformed": malformed,
            "progress": progress}
    tally: Counter[Band] = Counter()
    try:
        bands = {Band(b.strip()) for b in args.bands.split(",") if b.strip()}
        thresholds = Thresholds(link=args.link_threshold, review=args.review_threshold)
        model = FellegiSunterModel.load(args.model) if args.model else None
        if model is None and args.no_estimate:
            model = FellegiSunterModel.default()
        left = read_records(args.files[0], args.map, **read)  # type: ignore[arg-type]
        if args.command == "estimate":
            # Asked for explicitly: EM on this file whatever its size (the caller judges the result).
            gammas = Counter(compare(left[i], left[j]) for i, j in candidate_pairs(left))
            used = FellegiSunterModel.estimate(gammas, start=FellegiSunterModel.default())
            used.name_frequency_ref = NameFrequencies(left).references()
            used.info["source"] = f"EM on {args.files[0].name}"
            if args.save_model:
                used.save(args.save_model)
            progress.close()
            _report_malformed(malformed)
            print(json.dumps(used.weights_table(), ensure_ascii=False, indent=1))
            return 0
        n_records, everyone = len(left), list(left)
        if args.command == "link":
            right = read_records(args.files[1], args.map, **read)  # type: ignore[arg-type]
            n_records, everyone = n_records + len(right), [*left, *right]
            pairs, used = link_sets(left, right, model=model, thresholds=thresholds, keep=bands, progress=progress,
                                    tally=tally)
        else:
            pairs, used = dedupe(left, model=model, thresholds=thresholds, keep=bands, progress=progress,
                                 tally=tally)
    except (MappingError, ValueError, OSError, UnicodeDecodeError) as exc:
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress.close()
    _report_malformed(malformed)
    if model is None and used.info.get("source") != "EM":
        print(f"note: {n_records} records are fewer than the {min_records_for_em(everyone)} EM estimates its weights "
              "from: the shipped defaults were used; `estimate FILE --save-model M.json` then `--model M.json` fits "
              "this file's own", file=sys.stderr)
    if args.save_model:
        used.save(args.save_model)
    if args.output:
        with args.output.open("w", newline="", encoding="utf-8") as fh:
            written = write_pairs(pairs, fh, bands)
    else:
        written = write_pairs(pairs, sys.stdout, bands)
    counts = {b.value: tally[b] for b in Band}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{n_records} records, {sum(tally.values())} candidate pairs, bands {counts}, {written} written, "
          f"{len(malformed)} malformed rows skipped, model: {used.info.get('source')}, "
          f"{time.perf_counter() - started:.1f} s, peak memory {peak:.0f} MiB", file=sys.stderr)
    return 0


MAX_REPORTED = 100


def _report_malformed(malformed: list[str]) -> None:
    for message in malformed[:MAX_REPORTED]:
        print(f"malformed row skipped: {message}", file=sys.stderr)
    if len(malformed) > MAX_REPORTED:
        print(f"... and {len(malformed) - MAX_REPORTED} more malformed rows skipped", file=sys.stderr)
