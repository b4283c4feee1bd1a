"""Vulnerability audit of the hashed locks without the network (issue 22, 5; SECURITY.md).

pip-audit (`make audit`) asks PyPI's JSON API or osv.dev, which development machines and CI cannot
reach. This audit reads a committed snapshot instead: deploy/advisories/pypi-<date>.json holds the PyPA
Advisory Database's entries (OSV format) for every package named in requirements-dev.lock, at any
version, with the database commit it came from.

    python deploy/advisories/audit_offline.py check [--ignore-vuln ID ...]   # make audit-offline
    python deploy/advisories/audit_offline.py snapshot --db GITDIR           # make audit-refresh

`check` matches every locked name==version against the snapshot with OSV semantics (ECOSYSTEM ranges
of introduced/fixed/last_affected events, plus explicit `versions` lists; withdrawn entries are
skipped) and fails listing each hit not ignored; an ignored id must be explained in SECURITY.md. It also
fails when the lock names a package the snapshot was not built for (it would go unaudited). Needs only
`packaging` (in the dev lock); `snapshot` also reads YAML (PyYAML, in the dev lock) and git.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LOCK = REPO / "requirements-dev.lock"  # the runtime lock is its subset (tests/deploy/test_supply_chain.py)
SECURITY = REPO / "SECURITY.md"
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def locked(path: Path) -> list[tuple[str, str]]:
    """(canonical name, version) of each pinned entry of a requirements lock."""
    out: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        m = ENTRY.match(line)
        if m:
            out.append((canonicalize_name(m.group(1)), m.group(2)))
    return out


def _version(v: str) -> Version | None:
    try:
        return Version(v)
    except InvalidVersion:
        return None


def _in_range(version: Version, events: list[dict[str, str]]) -> bool:
    """OSV range evaluation: events sorted by version ("introduced: 0" first); a version is affected
    between an introduced and the next fixed (exclusive) or last_affected (inclusive)."""
    keyed: list[tuple[Version, int, str]] = []
    for event in events:
        for kind, value in event.items():
            if kind == "limit":  # only meaningful for GIT ranges
                continue
            v = Version("0") if (kind, value) == ("introduced", "0") else _version(value)
            if v is None:  # not a PEP 440 version: this event cannot be ordered, skip it
                continue
            # at one version: introduced before fixed, so "introduced X, fixed X" affects nothing
            keyed.append((v, {"introduced": 0, "fixed": 1, "last_affected": 2}.get(kind, 3), kind))
    affected = False
    for v, _, kind in sorted(keyed, key=lambda k: (k[0], k[1])):
        if kind == "introduced" and version >= v:
            affected = True
        elif kind == "fixed" and version >= v:
            affected = False
        elif kind == "last_affected" and version > v:
            affected = False
    return affected


def affects(advisory: dict[str, Any], package: str, version: str) -> bool:
    """Whether an OSV advisory (as stored in the snapshot) affects package==version."""
    if advisory.get("withdrawn"):
        return False
    parsed = _version(version)
    for entry in advisory["affected"]:
        if canonicalize_name(entry["package"]) != package:
            continue
        if version in entry.get("versions", ()) or (
                parsed and any(_version(v) == parsed for v in entry.get("versions", ()) if _version(v))):
            return True
        for rng in entry.get("ranges", ()):
            if rng["type"] in ("ECOSYSTEM", "SEMVER") and parsed and _in_range(parsed, rng["events"]):
                return True
    return False


@dataclass
class Hit:
    package: str
    version: str
    advisory: dict[str, Any]

    def line(self) -> str:
        a = self.advisory
        fixed = ", ".join(a.get("fixed", [])) or "none"
        return f"{self.package} {self.version}: {a['id']} ({', '.join(a.get('aliases', []))}) fixed in {fixed}: " \
               f"{a.get('summary', '')}"


def audit(packages: Iterable[tuple[str, str]], advisories: list[dict[str, Any]]) -> list[Hit]:
    return [Hit(name, version, a) for name, version in packages for a in advisories if affects(a, name, version)]


def ignored(hit: Hit, ignore: set[str]) -> bool:
    return bool({hit.advisory["id"], *hit.advisory.get("aliases", [])} & ignore)


def current_snapshot(folder: Path = HERE) -> Path:
    snapshots = sorted(folder.glob("pypi-*.json"))
    if not snapshots:
        raise SystemExit(f"no advisory snapshot in {folder}: make audit-refresh")
    return snapshots[-1]


def check(args: argparse.Namespace) -> int:
    snapshot = json.loads(Path(args.snapshot).read_text())
    src = snapshot["source"]
    print(f"advisory snapshot {Path(args.snapshot).name}: {src['repository']} at {src['commit']} ({src['date']}), "
          f"{len(snapshot['advisories'])} advisories for {len(snapshot['packages'])} packages")
    packages = locked(Path(args.lock))
    failures = []
    uncovered = sorted({name for name, _ in packages} - set(snapshot["packages"]))
    if uncovered:
        failures.append(f"not in the snapshot (unaudited; make audit-refresh): {', '.join(uncovered)}")
    security = Path(args.security).read_text()
    ignore = set(args.ignore_vuln)
    for vuln in sorted(ignore):
        if vuln not in security:
            failures.append(f"{vuln} is ignored but {Path(args.security).name} does not say why it does not apply")
    hits = audit(packages, snapshot["advisories"])
    for hit in hits:
        if ignored(hit, ignore):
            print(f"ignored (SECURITY.md): {hit.line()}")
        else:
            failures.append(hit.line())
    print(f"{len(packages)} locked packages checked from {Path(args.lock).name}: {len(hits)} advisories match, "
          f"{len(hits) - sum(ignored(h, ignore) for h in hits)} not ignored")
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


# --- snapshot: rebuild deploy/advisories/pypi-<date>.json from a git clone of the advisory database ---

def _git(db: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", db, *args], check=True, capture_output=True, text=True).stdout


def _compact(osv: dict[str, Any], names: set[str]) -> dict[str, Any] | None:
    affected: list[dict[str, Any]] = []
    for entry in osv.get("affected", []):
        pkg = entry.get("package", {})
        if pkg.get("ecosystem") != "PyPI" or canonicalize_name(pkg.get("name", "")) not in names:
            continue
        ranges: list[dict[str, Any]] = [
            {"type": r["type"], "events": [{k: str(v) for k, v in e.items()} for e in r.get("events", [])]}
            for r in entry.get("ranges", []) if r.get("type") in ("ECOSYSTEM", "SEMVER")]
        # a listed version its ranges already cover adds nothing (affected = listed or in a range): dropped
        versions = [str(v) for v in entry.get("versions", [])
                    if not ((parsed := _version(str(v))) and any(_in_range(parsed, r["events"]) for r in ranges))]
        affected.append({"package": canonicalize_name(pkg["name"]), "ranges": ranges, "versions": versions})
    if not affected:
        return None
    text = (osv.get("summary") or osv.get("details") or "").strip().splitlines()
    summary = text[0] if text else ""
    out: dict[str, Any] = {
        "id": osv["id"], "aliases": sorted(osv.get("aliases") or []),
        "summary": summary if len(summary) <= 200 else summary[:197] + "...",
        "modified": str(osv.get("modified", "")),
        "fixed": sorted({e["fixed"] for a in affected for r in a["ranges"] for e in r["events"] if "fixed" in e},
                        key=lambda v: (_version(v) or Version("0"), v)),
        "affected": affected}
    if osv.get("withdrawn"):
        out["withdrawn"] = str(osv["withdrawn"])
    return out


def snapshot(args: argparse.Namespace) -> int:
    import yaml  # PyYAML: only to rebuild the snapshot

    commit = _git(args.db, "rev-parse", args.ref).strip()
    date = _git(args.db, "show", "-s", "--format=%cI", commit).strip()
    names = {name for name, _ in locked(Path(args.lock))}
    files = [f for f in _git(args.db, "ls-tree", "-r", "--name-only", commit, "vulns").splitlines()
             if f.endswith((".yaml", ".yml", ".json")) and canonicalize_name(f.split("/")[1]) in names]
    advisories = []
    for f in files:  # vulns/<package>/<ID>.yaml; an entry may also name other packages, kept if locked
        text = _git(args.db, "show", f"{commit}:{f}")
        entry = _compact(json.loads(text) if f.endswith(".json") else yaml.safe_load(text), names)
        if entry:
            advisories.append(entry)
    advisories.sort(key=lambda a: (a["affected"][0]["package"], a["id"]))
    out = Path(args.out_dir) / f"pypi-{date[:10]}.json"
    head = {"source": {"repository": args.source, "commit": commit, "date": date,
                       "format": "OSV (https://ossf.github.io/osv-schema/), reduced to the fields the audit uses"},
            "lock": Path(args.lock).name, "packages": sorted(names)}
    # one advisory a line: a refresh reads as a diff of advisories
    lines = [f' "{k}": {json.dumps(v, separators=(",", ":"))},' for k, v in head.items()]
    body = ",\n".join(json.dumps(a, ensure_ascii=False, separators=(",", ":")) for a in advisories)
    out.write_text("{\n" + "\n".join(lines) + '\n "advisories": [\n' + body + "\n]}\n")
    for old in Path(args.out_dir).glob("pypi-*.json"):
        if old != out:
            old.unlink()  # one current snapshot; git keeps the earlier ones
    print(f"{out}: {len(advisories)} advisories for {len(names)} locked packages, {args.source} at {commit} ({date})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="audit the lock against the committed snapshot")
    c.add_argument("--lock", default=str(LOCK))
    c.add_argument("--snapshot", default=None)
    c.add_argument("--security", default=str(SECURITY))
    c.add_argument("--ignore-vuln", action="append", default=[], metavar="ID",
                   help="an advisory id or alias that SECURITY.md explains as not applying (as pip-audit)")
    s = sub.add_parser("snapshot", help="rebuild the snapshot from a git clone of the advisory database")
    s.add_argument("--db", required=True, help="git directory of a clone of pypa/advisory-database")
    s.add_argument("--ref", default="HEAD")
    s.add_argument("--source", default="https://github.com/pypa/advisory-database")
    s.add_argument("--lock", default=str(LOCK))
    s.add_argument("--out-dir", default=str(HERE))
    args = parser.parse_args(argv)
    if args.command == "check":
        args.snapshot = args.snapshot or str(current_snapshot())
        return check(args)
    return snapshot(args)


if __name__ == "__main__":
    sys.exit(main())
