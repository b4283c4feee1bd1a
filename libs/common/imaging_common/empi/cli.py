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
parameters are estimated by EM on the file's own candidate pairs unless --model/--no-estimate.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from imaging_common.csvsafe import SafeWriter
from imaging_common.empi.bands import Band, Thresholds
from imaging_common.empi.comparators import compare
from imaging_common.empi.fellegi_sunter import FellegiSunterModel
from imaging_common.empi.frequencies import NameFrequencies
from imaging_common.empi.identifiers import IdType, parse_id_type
from imaging_common.empi.matcher import ScoredPair, candidate_pairs, dedupe, link_sets
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


def read_records(path: Path, mapping_items: Sequence[str], *, encoding: str, delimiter: str,
                 prefix: str = "") -> list[MatchRecord]:
    with path.open(newline="", encoding=encoding) as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        mapping = parse_mapping(mapping_items, reader.fieldnames or [])

        def get(row: dict[str, str], name: str) -> str | None:
            cols = mapping.get(name)
            if not cols:
                return None
            if len(cols) == 1:
                return (row.get(cols[0]) or "").strip() or None
            return "".join((row.get(c) or "").strip() for c in cols) or None

        out = []
        for n, row in enumerate(reader, start=1):
            idents: list[tuple[str | IdType, str]] = []
            number = get(row, "id_number")
            if number:
                try:
                    kind = parse_id_type(get(row, "id_type"))
                except ValueError:
                    kind = IdType.RESIDENT_ID
                idents.append((kind, number))
            for name in mapping:
                if name.startswith("ident:"):
                    value = get(row, name)
                    if value:
                        idents.append((name[6:], value))
            out.append(MatchRecord.build(
                prefix + (get(row, "id") or str(n)), name=get(row, "name"), family_name=get(row, "family_name"),
                given_name=get(row, "given_name"), birth_date=get(row, "birth_date"), sex=get(row, "sex"),
                identifiers=idents, phone=get(row, "phone"), address=get(row, "address"),
                postcode=get(row, "postcode"),
            ))
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
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        bands = {Band(b.strip()) for b in args.bands.split(",") if b.strip()}
        thresholds = Thresholds(link=args.link_threshold, review=args.review_threshold)
        model = FellegiSunterModel.load(args.model) if args.model else None
        if model is None and args.no_estimate:
            model = FellegiSunterModel.default()
        left = read_records(args.files[0], args.map, encoding=args.encoding, delimiter=args.delimiter)
        if args.command == "estimate":
            # Asked for explicitly: EM on this file whatever its size (the caller judges the result).
            gammas = [compare(left[i], left[j]) for i, j in candidate_pairs(left)]
            used = FellegiSunterModel.estimate(gammas, start=FellegiSunterModel.default())
            used.name_frequency_ref = NameFrequencies(left).references()
            used.info["source"] = f"EM on {args.files[0].name}"
            if args.save_model:
                used.save(args.save_model)
            print(json.dumps(used.weights_table(), ensure_ascii=False, indent=1))
            return 0
        if args.command == "link":
            right = read_records(args.files[1], args.map, encoding=args.encoding, delimiter=args.delimiter)
            pairs, used = link_sets(left, right, model=model, thresholds=thresholds)
        else:
            pairs, used = dedupe(left, model=model, thresholds=thresholds)
    except (MappingError, ValueError, OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.save_model:
        used.save(args.save_model)
    if args.output:
        with args.output.open("w", newline="", encoding="utf-8") as fh:
            written = write_pairs(pairs, fh, bands)
    else:
        written = write_pairs(pairs, sys.stdout, bands)
    counts = {b.value: sum(1 for p in pairs if p.band is b) for b in Band}
    print(f"{len(left)} records, {len(pairs)} candidate pairs, bands {counts}, {written} written, "
          f"model: {used.info.get('source')}, {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0
