"""Reproducible and audited installs (issue 22, 5; SECURITY.md).

The locks pin every package with hashes and hold every direct requirement at its pinned version; the
runtime lock is the dev lock's runtime part; the Makefile and the Dockerfile install only from them
with --require-hashes; every package's pyproject declares what its code imports, satisfied by the lock;
`make sbom` writes a CycloneDX SBOM that lists exactly the image's lock; `make audit` exists and audits
the lock with hashes (its result needs the network: SECURITY.md).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"libs/common": "imaging_common"} | {
    f"services/{p.name}": next(d.name for d in p.iterdir() if (d / "__init__.py").exists() and d.name != "tests")
    for p in sorted((REPO / "services").iterdir()) if (p / "pyproject.toml").is_file()
}
# imaging-testing (libs/testing) is the test support `make venv` installs too; the image never does.
LOCAL = {"imaging-common", "imaging-testing"} | {
    canonicalize_name(tomllib.loads((REPO / d / "pyproject.toml").read_text())["project"]["name"]) for d in PACKAGES}
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(;[^\\]*)?\\?$")


def locked(path: Path) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, hashes) of a `uv pip compile --generate-hashes` lock; every entry must have hashes."""
    out: dict[str, tuple[str, set[str]]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            m = ENTRY.match(line)
            assert m, f"{path.name}: not an exact pin: {line!r}"
            name = canonicalize_name(m.group(1))
            out[name] = (m.group(3), set())
        else:
            h = re.fullmatch(r"\s+--hash=sha256:([0-9a-f]{64})\s*\\?", line)
            assert h and name, f"{path.name}: unexpected line {line!r}"
            out[name][1].add(h.group(1))
    for pkg, (_, hashes) in out.items():
        assert hashes, f"{path.name}: {pkg} has no hash"
    return out


def direct(path: Path) -> dict[str, str]:
    """name -> pinned version of a requirements*.txt (following -r)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            out |= direct(path.parent / line[3:].strip())
        elif line:
            req = Requirement(line)
            [spec] = list(req.specifier)
            assert spec.operator == "==", f"{path.name}: {line} is not pinned"
            out[canonicalize_name(req.name)] = spec.version
    return out


RUNTIME, DEV = locked(REPO / "requirements.lock"), locked(REPO / "requirements-dev.lock")


@pytest.mark.parametrize(("requirements", "lock"), [("requirements.txt", RUNTIME), ("requirements-dev.txt", DEV)])
def test_every_direct_requirement_is_locked_at_its_pin(requirements: str, lock: dict) -> None:
    for name, version in direct(REPO / requirements).items():
        assert name in lock, f"{name} missing from the lock of {requirements}: make lock"
        assert lock[name][0] == version, f"{name}: {requirements} pins {version}, the lock {lock[name][0]}: make lock"


def test_runtime_lock_is_the_dev_locks_runtime_part() -> None:
    for name, (version, hashes) in RUNTIME.items():
        assert DEV.get(name, ("", set()))[0] == version, f"{name}: {version} in requirements.lock, not in the dev lock"
        assert hashes <= DEV[name][1], name
    tools = set(direct(REPO / "requirements-dev.txt")) - set(direct(REPO / "requirements.txt"))
    assert not tools & set(RUNTIME), f"dev tools in the image's lock: {tools & set(RUNTIME)}"


def test_installed_environment_is_the_dev_lock() -> None:
    """What `make venv` installed is what the lock says (pip refused anything else)."""
    wrong = []
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in LOCAL or (name in ("setuptools", "wheel") and name not in DEV):  # what `python -m venv` seeds
            continue
        if name not in DEV:
            wrong.append(f"{name} {dist.version} installed, not in requirements-dev.lock")
        elif DEV[name][0] != dist.version:
            wrong.append(f"{name} {dist.version} installed, {DEV[name][0]} locked")
    assert not wrong, "\n".join(wrong)


def test_make_and_the_image_install_only_from_the_locks() -> None:
    makefile = (REPO / "Makefile").read_text()
    venv = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "pip install" in venv and "--require-hashes --no-deps -r requirements-dev.lock" in venv
    assert "-r requirements-dev.txt" not in venv and "-r requirements.txt" not in venv
    editable = [line for line in venv.splitlines() if "-e libs/common" in line]
    assert editable and all("--no-deps" in line for line in editable), editable
    assert "pip check" in venv
    dockerfile = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
    installs = re.findall(r"pip install [^\n]*", dockerfile)
    assert installs, dockerfile
    assert all("--no-deps" in i for i in installs), installs
    assert any("--require-hashes --no-deps -r requirements.lock" in i for i in installs), installs


def _third_party_imports(root: Path) -> set[str]:
    mods: set[str] = set()
    for f in root.rglob("*.py"):
        rel = f.relative_to(root).parts
        if "tests" in rel or f.name.startswith(("test", "conftest")):
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and m not in PACKAGES.values()}


@pytest.mark.parametrize("folder", sorted(PACKAGES))
def test_pyproject_declares_what_the_code_imports_and_the_lock_satisfies_it(folder: str) -> None:
    project = tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]
    declared = [Requirement(d) for d in project.get("dependencies", [])]
    assert declared, f"{folder}: no [project] dependencies"
    names = {canonicalize_name(r.name) for r in declared}
    for req in declared:
        name = canonicalize_name(req.name)
        if name in LOCAL:
            continue
        assert name in RUNTIME, f"{folder}: {req} is not in requirements.lock"
        assert RUNTIME[name][0] in req.specifier, f"{folder}: {req} not satisfied by the locked {RUNTIME[name][0]}"
    by_module = importlib.metadata.packages_distributions()
    undeclared = {}
    for module in _third_party_imports(REPO / folder):
        dists = {canonicalize_name(d) for d in by_module.get(module, [])}
        assert dists, f"{folder}: imports {module}, which no installed distribution provides"
        # botocore comes with boto3, fhir_core with fhir.resources, as their own requirements
        if not dists & names and not any(_requires(n, dists) for n in names):
            undeclared[module] = sorted(dists)
    assert not undeclared, f"{folder}: imports without a declared dependency: {undeclared}"


def _requires(declared: str, dists: set[str]) -> bool:
    try:
        reqs = importlib.metadata.requires(declared) or []
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(canonicalize_name(Requirement(r).name) in dists for r in reqs if "extra ==" not in r)


def test_make_sbom_lists_exactly_the_image_lock(tmp_path: Path) -> None:
    out = tmp_path / "sbom.cdx.json"
    # -o: take the venv as made (this test runs inside it; make test made it).
    done = subprocess.run(["make", "-s", "-o", ".venv/.installed", "sbom", f"SBOM={out}"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    root = bom["metadata"]["component"]
    assert root["name"] == "imaging-platform" and root["licenses"][0]["license"]["id"] == "Apache-2.0"
    components = {canonicalize_name(c["name"]): c for c in bom["components"]}
    assert set(components) == set(RUNTIME), set(components) ^ set(RUNTIME)
    for name, (version, hashes) in RUNTIME.items():
        c = components[name]
        assert c["version"] == version and c["purl"] == f"pkg:pypi/{name}@{version}", c
        listed = {h["content"] for ref in c.get("externalReferences", []) for h in ref.get("hashes", [])
                  if h["alg"] == "SHA-256"}
        assert listed == hashes, name
    assert "ecdsa" in components  # listed as installed; SECURITY.md says why its advisory does not apply


def test_make_audit_audits_the_hashed_lock_and_ignores_only_what_security_md_explains() -> None:
    makefile = (REPO / "Makefile").read_text()
    audit = makefile.split("\naudit:", 1)[1].split("\n\n", 1)[0]
    assert "pip-audit" in audit and "--require-hashes" in audit and "-r requirements-dev.lock" in audit
    ignored = re.findall(r"--ignore-vuln (\S+)", makefile)
    security = (REPO / "SECURITY.md").read_text()
    for vuln in ignored:
        assert vuln in security, f"{vuln} ignored by make audit but not explained in SECURITY.md"
    assert "CVE-2024-23342" in security and "not run from the development machines" in security
    dry = subprocess.run(["make", "-n", "-o", ".venv/.installed", "audit"], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=False)
    assert dry.returncode == 0 and "pip-audit" in dry.stdout, dry.stdout + dry.stderr
