"""Every service keeps the rooms of docs/service-template.md: read from the source, nothing started."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted(p for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists())
PROTOCOL_LIBRARIES = ("fastapi", "starlette", "pynetdicom", "hl7apy", "fhir", "aio_pika", "aiormq", "httpx")
# The platform's own message builders, parsers and listeners are an adapter's too (a domain that built an
# ORM^O01 with imaging_common.hl7 slipped past the list above); hl7.times, the center's time zone and
# instant formats, is a data format the domain's rules use.
PROTOCOL_MODULES = ("imaging_common.hl7", "imaging_common.fhir")
DATA_FORMAT_MODULES = ("imaging_common.hl7.times",)
# Test support: fixtures, test peers, synthetic data; never imported by runtime code.
TEST_SUPPORT = ("imaging_testing", "pytest", "hypothesis")
RENAMED = {"events_in.py": "events.py", "http_ui.py": "ui.py", "screens_ui.py": "ui.py", "fhir_api.py": "http_fhir.py",
           "fhir.py": "http_fhir.py", "http.py": "http_<resource>.py"}
# A statement: its keyword in capitals as the services write SQL, or a lower-case statement's shape. Not the audit
# action "update", nor a summary that begins "Delete ..." (those matched when the keywords alone were enough).
SQL = re.compile(r"^\s*(?:(?:SELECT|INSERT|UPDATE|DELETE|WITH)\b"
                 r"|(?i:select\s[\s\S]*?\bfrom\s|insert\s+into\s|update\s+[\w.]+(?:\s+\w+)?\s+set\s|delete\s+from\s))")


def _package(service: Path) -> Path:
    [package] = [p for p in service.iterdir() if (p / "app.py").exists()]
    return package


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def _within(name: str, modules: tuple[str, ...]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def _runtime_modules() -> list[Path]:
    services = [p for s in SERVICES for p in _modules(_package(s))]
    return [*_modules(ROOT / "libs" / "common" / "imaging_common"), *services]


@pytest.fixture(params=SERVICES, ids=[s.name for s in SERVICES])
def service(request: pytest.FixtureRequest) -> Path:
    return request.param  # type: ignore[no-any-return]


def test_the_template_files_are_there(service: Path) -> None:
    package = _package(service)
    missing = [name for name in ("README.md", "pyproject.toml") if not (service / name).exists()]
    missing += [f"{package.name}/{name}" for name in ("__main__.py", "app.py", "settings.py", "domain/__init__.py",
                                                     "adapters/__init__.py", "adapters/events.py")
                if not (package / name).exists()]
    assert missing == []


def test_no_file_under_a_name_the_template_replaced(service: Path) -> None:
    adapters = _package(service) / "adapters"
    wrong = [f"{p.name} (template: {RENAMED[p.name]})" for p in adapters.iterdir() if p.name in RENAMED]
    assert wrong == []


def test_the_domain_speaks_no_protocol(service: Path) -> None:
    wrong = []
    for path in _modules(_package(service) / "domain"):
        for name in _imports(path):
            top = name.split(".")[0]
            builder = _within(name, PROTOCOL_MODULES) and not _within(name, DATA_FORMAT_MODULES)
            adapter = ".adapters" in name or name.startswith(f"{service.name}.adapters")
            if top in PROTOCOL_LIBRARIES or builder or adapter:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_lifecycle_tables_live_in_states(service: Path) -> None:
    wrong = [str(p.relative_to(ROOT)) for p in _modules(_package(service))
             if p.name != "states.py" and re.search(r"^TRANSITIONS\b", p.read_text(encoding="utf-8"), re.MULTILINE)]
    assert wrong == []


def test_route_handlers_write_no_sql(service: Path) -> None:
    adapters = _package(service) / "adapters"
    wrong = []
    for path in [*adapters.glob("http_*.py"), *adapters.glob("ui.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert wrong == []


def test_settings_are_read_typed() -> None:
    wrong = []
    for path in _runtime_modules():
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"getattr\(\s*[\w.]*settings\b", text):
            wrong.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}")
    assert wrong == []


def test_runtime_code_imports_no_test_support() -> None:
    wrong = []
    for path in _runtime_modules():
        for name in _imports(path):
            if name.split(".")[0] in TEST_SUPPORT:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_event_handlers_are_keyed_by_model(service: Path) -> None:
    package = _package(service)
    handlers = importlib.import_module(f"{package.name}.adapters.events").HANDLERS
    assert all(isinstance(model, type) and isinstance(getattr(model, "type", None), str) for model in handlers)
