"""The batch CLI on real CSV files: Chinese headers, a column mapping, GB18030, bad mappings."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from imaging_common.empi.identifiers import resident_check_char


def rid(region: str, born: str, seq: int) -> str:
    first = f"{region}{born}{seq:03d}"
    return first + resident_check_char(first)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imaging_common.empi", *args], capture_output=True, text=True,
                          timeout=120)


def site_file(folder: Path, *, seed: int, people: int) -> Path:
    """A site's export of a synthetic population: site.csv with the generator's columns."""
    from imaging_testing.synthetic import Generator

    src = folder / "site.csv"
    records = Generator(seed=seed).population(people)
    with src.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0].row()))
        writer.writeheader()
        writer.writerows(r.row() for r in records)
    return src


def test_dedupe_with_chinese_headers(tmp_path: Path) -> None:
    a = rid("440106", "19800101", 51)
    typo = a[:5] + str((int(a[5]) + 1) % 10) + a[6:]
    rows = [
        ["编号", "姓名", "性别", "出生日期", "身份证号", "电话"],
        ["1", "林丽", "女", "1980-01-01", a, "13512345678"],
        ["2", "林莉", "女", "1980-01-01", typo, "13512345678"],
        ["3", "林丽", "女", "1980-01-01", rid("440106", "19800101", 62), ""],
        ["4", "黄海", "男", "1975-05-05", "", "13800000000"],
    ]
    src = tmp_path / "in.csv"
    with src.open("w", newline="", encoding="gb18030") as fh:
        csv.writer(fh).writerows(rows)
    out = tmp_path / "out.csv"
    res = run("dedupe", str(src), "-o", str(out), "--encoding", "gb18030", "--bands", "link,review,new")
    assert res.returncode == 0, res.stderr
    got = {frozenset((r["left_id"], r["right_id"])): r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert got[frozenset(("1", "2"))]["band"] == "link"  # homophone + ID typo: the same person
    assert got[frozenset(("1", "3"))]["band"] == "new"  # same name and birth date, another valid ID
    assert list(csv.reader(out.open()))[0] == ["left_id", "right_id", "score", "band"]


def test_link_two_files_with_a_mapping(tmp_path: Path) -> None:
    left = tmp_path / "his.csv"
    right = tmp_path / "pacs.csv"
    left.write_text("PID,SURNAME,FORENAME,DOB,SEX,PASSPORT\nH1,SMITH,JOHN,1970-02-03,M,E1234567\n"
                    "H2,DOE,JANE,1981-12-11,F,\n", encoding="utf-8")
    right.write_text("PID,SURNAME,FORENAME,DOB,SEX,PASSPORT\nP9,SMYTH,JOHN,1970-03-02,M,E1234567\n", encoding="utf-8")
    out = tmp_path / "pairs.csv"
    mapping = ["--map", "id=PID", "--map", "family_name=SURNAME", "--map", "given_name=FORENAME",
               "--map", "birth_date=DOB", "--map", "ident:passport=PASSPORT"]
    res = run("link", str(left), str(right), "-o", str(out), *mapping)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(out.open()))
    assert [(r["left_id"], r["right_id"], r["band"]) for r in rows] == [("H1", "P9", "link")]


def test_bad_mapping_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("a,b\n1,2\n")
    res = run("dedupe", str(src), "--map", "name=NOPE")
    assert res.returncode == 2 and "no column NOPE" in res.stderr
    res = run("dedupe", str(src))
    assert res.returncode == 2 and "no name column" in res.stderr


def test_estimate_saves_a_model_the_service_can_load(tmp_path: Path) -> None:
    from imaging_common.empi.fellegi_sunter import FellegiSunterModel

    src = site_file(tmp_path, seed=3, people=600)
    model_file = tmp_path / "site.json"
    res = run("estimate", str(src), "--save-model", str(model_file))
    assert res.returncode == 0, res.stderr
    model = FellegiSunterModel.load(model_file)
    assert model.info["source"] == "EM on site.csv"
    assert model.weights_table()["national_id"]["exact"] > 0 > model.weights_table()["national_id"]["different"]
    res = run("dedupe", str(src), "--model", str(model_file), "-o", str(tmp_path / "p.csv"))
    assert res.returncode == 0 and "EM on site.csv" in res.stderr


def test_card_and_insurance_columns_are_found_by_their_usual_headers(tmp_path: Path) -> None:
    idn = rid("510104", "19920714", 33)
    his = tmp_path / "his.csv"
    his.write_text(f"病历号,姓名,性别,出生日期,身份证号,就诊卡号\nH1,刘洋,男,1992-07-14,{idn},K778899\n"
                   "H2,刘阳,男,1992-07-14,,K112233\n", encoding="utf-8")
    pacs = tmp_path / "pacs.csv"
    # The PACS got the ID from the insurance card, and one patient only by card number (name typed by ear).
    pacs.write_text(f"编号,姓名,性别,出生日期,医保卡号,就诊卡号\nP1,刘阳,男,1992-07-14,{idn},\n"
                    "P2,刘洋,男,1992-07-14,,K112233\n", encoding="utf-8")
    out = tmp_path / "pairs.csv"
    res = run("link", str(his), str(pacs), "-o", str(out), "--no-estimate")
    assert res.returncode == 0, res.stderr
    bands = {(r["left_id"], r["right_id"]): r["band"] for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert bands[("H1", "P1")] == "link"  # homophone, but the ID number agrees (from the insurance card)
    # The same card and a homophone: weighty, but a parent may bring one twin's card for the other -> a clerk.
    assert bands[("H2", "P2")] == "review"


def test_malformed_rows_are_reported_with_their_line_numbers(tmp_path: Path) -> None:
    a = rid("440106", "19800101", 51)
    src = tmp_path / "broken.csv"
    src.write_text(
        "编号,姓名,性别,出生日期,身份证号,电话,地址\n"  # line 1
        f"1,林丽,女,1980-01-01,{a},13512345678,广州市天河区\n"  # 2
        '2,"黄海,男,1975-05-05,,13800001111,广州市越秀区\n'  # 3: the quote never ends
        f"3,林丽,女,1980-01-01,{a},13512345678,\"广州市\n天河区\"\n"  # 4-5: a quoted address over two lines
        "4,王芳,女,1990-02-02\n"  # 6: too few fields
        f"5,林莉,女,1980-01-01,{a},13512345678,广州市天河区\n",  # 7
        encoding="utf-8")
    out = tmp_path / "out.csv"
    res = run("dedupe", str(src), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "line 3: unterminated quote" in res.stderr
    assert "line 6: 4 fields where the header has 7" in res.stderr
    assert "2 malformed rows skipped" in res.stderr
    linked = {frozenset((r["left_id"], r["right_id"])) for r in csv.DictReader(out.open(encoding="utf-8"))
              if r["band"] == "link"}
    # The rows after the broken quote are read: 1, 3 and 5 are one person.
    assert linked == {frozenset(("1", "3")), frozenset(("1", "5")), frozenset(("3", "5"))}
    strict = run("dedupe", str(src), "-o", str(out), "--strict")
    assert strict.returncode == 2 and "error: line 3: unterminated quote" in strict.stderr


def test_progress_is_plain_lines_when_not_a_terminal(tmp_path: Path) -> None:
    src = site_file(tmp_path, seed=5, people=300)
    res = run("dedupe", str(src), "-o", str(tmp_path / "p.csv"))
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert "\r" not in res.stderr and "\x1b" not in res.stderr  # no bar drawn into a log
    assert any(line.startswith("reading site.csv:") and "records" in line for line in lines)
    assert any(line.startswith("comparing pairs:") and "(100%)" in line and "ETA" in line for line in lines)
    assert "peak memory" in lines[-1]
    quiet = run("dedupe", str(src), "-o", str(tmp_path / "p.csv"), "--quiet")
    assert not any(line.startswith(("reading", "blocking", "comparing")) for line in quiet.stderr.splitlines())
    assert "peak memory" in quiet.stderr.splitlines()[-1]
    # A file below the EM size says how to fit its own weights.
    assert "`estimate FILE --save-model M.json`" in quiet.stderr


def test_progress_bar_on_a_terminal() -> None:
    import io

    from imaging_common.empi.cli import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    bar = Progress(out, interval=0)
    bar("comparing pairs", 50, 100)
    bar("comparing pairs", 100, 100)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and "[############            ] 50/100 pairs (50%), ETA" in text
    assert text.endswith("(100%), ETA 0:00\n")
