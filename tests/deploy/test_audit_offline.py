"""The offline vulnerability audit CI runs (issue 22, 5; SECURITY.md, deploy/advisories/audit_offline.py).

The matcher follows OSV (ranges of introduced/fixed/last_affected events, explicit version lists, withdrawn
entries skipped), proven on synthetic advisories; `check` fails on a hit unless its id is ignored and
explained, and on a locked package the snapshot does not cover; `snapshot` rebuilds the committed file
from a git advisory database; `make audit-offline` passes on the committed snapshot with the Makefile's
ignore list. The snapshot's age is printed, never tested: CI does not depend on today's date.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "deploy" / "advisories" / "audit_offline.py"
_spec = importlib.util.spec_from_file_location("audit_offline", TOOL)
assert _spec and _spec.loader
audit_offline = importlib.util.module_from_spec(_spec)
sys.modules["audit_offline"] = audit_offline  # dataclasses look their module up
_spec.loader.exec_module(audit_offline)


def _adv(id_: str, package: str, events: list[dict[str, str]] | None = None, versions: list[str] | None = None,
         **extra: object) -> dict:
    ranges = [{"type": "ECOSYSTEM", "events": events}] if events else []
    return {"id": id_, "aliases": [], "summary": id_, "affected": [
        {"package": package, "ranges": ranges, "versions": versions or []}], **extra}


@pytest.mark.parametrize(("version", "expected"), [
    ("0.9", False), ("1.0", True), ("1.3.9", True), ("1.4.0rc1", True), ("1.4", False), ("1.9", False),
    ("2.0", True), ("2.0.1", True), ("2.1", False), ("3.0", False)])
def test_introduced_fixed_ranges(version: str, expected: bool) -> None:
    # two affected windows in one range, events given out of order (OSV sorts them)
    adv = _adv("T-1", "pkg", [{"fixed": "2.1"}, {"introduced": "1.0"}, {"fixed": "1.4"}, {"introduced": "2.0"}])
    assert audit_offline.affects(adv, "pkg", version) is expected


@pytest.mark.parametrize(("version", "expected"), [
    ("0.1", True), ("3.1", True), ("3.2", True), ("3.2.0", True), ("3.2.post1", False), ("3.3", False)])
def test_last_affected_is_inclusive(version: str, expected: bool) -> None:
    adv = _adv("T-2", "pkg", [{"introduced": "0"}, {"last_affected": "3.2"}])
    assert audit_offline.affects(adv, "pkg", version) is expected


def test_explicit_versions_withdrawn_other_packages_and_git_ranges() -> None:
    listed = _adv("T-3", "pkg", versions=["0.5", "0.7rc1"])
    assert audit_offline.affects(listed, "pkg", "0.5") and audit_offline.affects(listed, "pkg", "0.5.0")
    assert audit_offline.affects(listed, "pkg", "0.7rc1") and not audit_offline.affects(listed, "pkg", "0.6")
    # a range and a list: affected if in either
    both = _adv("T-4", "pkg", [{"introduced": "2.0"}, {"fixed": "2.2"}], versions=["1.1"])
    assert [audit_offline.affects(both, "pkg", v) for v in ("1.0", "1.1", "2.1", "2.2")] == [False, True, True, False]
    withdrawn = _adv("T-5", "pkg", [{"introduced": "0"}], versions=["1.0"], withdrawn="2024-01-01T00:00:00Z")
    assert not audit_offline.affects(withdrawn, "pkg", "1.0")
    assert not audit_offline.affects(_adv("T-6", "Other_Pkg", [{"introduced": "0"}]), "pkg", "1.0")
    assert audit_offline.affects(_adv("T-6", "Other_Pkg", [{"introduced": "0"}]), "other-pkg", "1.0")
    git = {"id": "T-7", "affected": [{"package": "pkg", "ranges": [
        {"type": "GIT", "repo": "https://example.org/r", "events": [{"introduced": "0"}]}], "versions": []}]}
    assert not audit_offline.affects(git, "pkg", "1.0")
    # "introduced X, fixed X" affects nothing; unparsable versions neither match nor break the check
    assert not audit_offline.affects(_adv("T-8", "pkg", [{"introduced": "1.0"}, {"fixed": "1.0"}]), "pkg", "1.0")
    assert not audit_offline.affects(_adv("T-9", "pkg", [{"introduced": "0"}, {"fixed": "1.0"}]), "pkg", "not a v")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120,
                          check=False)


def _check_fixture(tmp_path: Path, security: str) -> list[str]:
    lock = tmp_path / "requirements-dev.lock"
    lock.write_text("alpha==1.2.0 \\\n    --hash=sha256:" + "0" * 64 + "\nbeta==2.0 ; sys_platform == 'win32' \\\n"
                    "    --hash=sha256:" + "1" * 64 + "\n")
    snap = tmp_path / "pypi-2000-01-01.json"
    snap.write_text(json.dumps({
        "source": {"repository": "https://example.org/db", "commit": "c" * 40, "date": "2000-01-01T00:00:00+00:00"},
        "packages": ["alpha", "beta"],
        "advisories": [_adv("PYSEC-0-1", "alpha", [{"introduced": "1.0"}, {"fixed": "1.3"}]) | {
            "aliases": ["CVE-0-1", "GHSA-aaaa-bbbb-cccc"], "fixed": ["1.3"]},
            _adv("PYSEC-0-2", "beta", [{"introduced": "0"}, {"fixed": "1.0"}])]}))
    (tmp_path / "SECURITY.md").write_text(security)
    return ["check", "--lock", str(lock), "--snapshot", str(snap), "--security", str(tmp_path / "SECURITY.md")]


def test_check_fails_on_a_hit_unless_ignored_and_explained(tmp_path: Path) -> None:
    args = _check_fixture(tmp_path, "GHSA-aaaa-bbbb-cccc: does not apply because ...")
    hit = _run(*args)
    assert hit.returncode == 1, hit.stdout + hit.stderr
    assert "FAIL alpha 1.2.0: PYSEC-0-1 (CVE-0-1, GHSA-aaaa-bbbb-cccc) fixed in 1.3" in hit.stdout
    assert "2000-01-01" in hit.stdout and "c" * 40 in hit.stdout  # the snapshot's source and date are printed
    assert "beta" not in hit.stdout.split("\n", 1)[1]  # beta 2.0 is past the fix
    ok = _run(*args, "--ignore-vuln", "GHSA-aaaa-bbbb-cccc")  # ignored by an alias, as pip-audit does
    assert ok.returncode == 0 and "ignored (SECURITY.md): alpha 1.2.0: PYSEC-0-1" in ok.stdout, ok.stdout
    unexplained = _run(*_check_fixture(tmp_path, "nothing here"), "--ignore-vuln", "GHSA-aaaa-bbbb-cccc")
    assert unexplained.returncode == 1
    assert "GHSA-aaaa-bbbb-cccc is ignored but SECURITY.md does not say why" in unexplained.stdout


def test_check_fails_on_a_locked_package_the_snapshot_does_not_cover(tmp_path: Path) -> None:
    args = _check_fixture(tmp_path, "GHSA-aaaa-bbbb-cccc")
    lock = Path(args[args.index("--lock") + 1])
    lock.write_text(lock.read_text() + "gamma==1.0 \\\n    --hash=sha256:" + "2" * 64 + "\n")
    done = _run(*args, "--ignore-vuln", "GHSA-aaaa-bbbb-cccc")
    assert done.returncode == 1 and "not in the snapshot (unaudited; make audit-refresh): gamma" in done.stdout


def test_snapshot_rebuilds_from_a_git_advisory_database(tmp_path: Path) -> None:
    db = tmp_path / "db"
    entries = {
        "vulns/alpha/PYSEC-2001-1.yaml": "id: PYSEC-2001-1\nsummary: alpha overflow\naliases: [CVE-2001-1]\n"
        "modified: '2001-01-01T00:00:00Z'\naffected:\n- package: {name: Alpha, ecosystem: PyPI}\n"
        "  ranges:\n  - type: ECOSYSTEM\n    events: [{introduced: '0'}, {fixed: '1.3'}]\n"
        "  versions: ['1.0', '1.2.0', '0.1.dev-weird']\n",
        "vulns/beta/PYSEC-2001-2.yaml": "id: PYSEC-2001-2\ndetails: 'beta: first line\n\n  more'\n"
        "withdrawn: '2002-01-01T00:00:00Z'\naffected:\n- package: {name: beta, ecosystem: PyPI}\n  versions: ['2.0']\n",
        "vulns/unlocked/PYSEC-2001-3.yaml":
            "id: PYSEC-2001-3\naffected:\n- package: {name: unlocked, ecosystem: PyPI}\n",
    }
    for path, text in entries.items():
        (db / path).parent.mkdir(parents=True, exist_ok=True)
        (db / path).write_text(text)
    env = os.environ | {"GIT_AUTHOR_DATE": "2001-02-03T04:05:06Z", "GIT_COMMITTER_DATE": "2001-02-03T04:05:06Z",
                        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.org"}
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "db"]):
        subprocess.run(["git", "-C", str(db), *cmd], check=True, env=env, capture_output=True)
    commit = subprocess.run(["git", "-C", str(db), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    out = tmp_path / "out"
    out.mkdir()
    (out / "pypi-1999-01-01.json").write_text("{}")  # an older snapshot is replaced
    lock = tmp_path / "requirements-dev.lock"
    lock.write_text("alpha==1.2.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
                    "beta==2.0 \\\n    --hash=sha256:" + "1" * 64 + "\n")
    done = _run("snapshot", "--db", str(db / ".git"), "--lock", str(lock), "--out-dir", str(out),
                "--source", "https://example.org/db")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.name for p in out.iterdir()] == ["pypi-2001-02-03.json"]
    snap = json.loads((out / "pypi-2001-02-03.json").read_text())
    assert snap["source"]["commit"] == commit and snap["source"]["repository"] == "https://example.org/db"
    assert snap["packages"] == ["alpha", "beta"]
    alpha, beta = snap["advisories"]
    assert alpha["id"] == "PYSEC-2001-1" and alpha["aliases"] == ["CVE-2001-1"] and alpha["fixed"] == ["1.3"]
    assert alpha["summary"] == "alpha overflow" and alpha["affected"][0]["package"] == "alpha"
    # listed versions inside the range are redundant and dropped; one the range cannot order is kept
    assert alpha["affected"][0]["versions"] == ["0.1.dev-weird"]
    assert beta["id"] == "PYSEC-2001-2" and beta["withdrawn"] and beta["summary"] == "beta: first line"
    check = _run("check", "--lock", str(lock), "--snapshot", str(out / "pypi-2001-02-03.json"),
                 "--security", str(REPO / "SECURITY.md"))
    assert check.returncode == 1 and "FAIL alpha 1.2.0: PYSEC-2001-1" in check.stdout and "beta 2.0" not in check.stdout


def test_make_audit_offline_passes_on_the_committed_snapshot() -> None:
    snapshots = sorted((REPO / "deploy" / "advisories").glob("pypi-*.json"))
    assert len(snapshots) == 1, snapshots  # one current snapshot: git keeps the earlier ones
    makefile = (REPO / "Makefile").read_text()
    target = makefile.split("\naudit-offline:", 1)[1].split("\n\n", 1)[0]
    assert "audit_offline.py check $(AUDIT_IGNORE)" in target  # the same ignore list as make audit
    done = subprocess.run(["make", "-s", "-o", ".venv/.installed", "audit-offline"], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    header = done.stdout.splitlines()[0]
    assert re.match(r"advisory snapshot pypi-\d{4}-\d{2}-\d{2}\.json: \S+ at [0-9a-f]{40} ", header), header
    print(header)  # its age, for the reader of the CI log; not a test (CI must not depend on the date)
    assert "0 not ignored" in done.stdout, done.stdout
