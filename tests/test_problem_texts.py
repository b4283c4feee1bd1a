"""Every refusal a person can meet has a stable code and a Chinese wording (issue 23, item 5).

The messages are read from the source with `ast`, as a reviewer would find them: the literal details of
HTTPException, and the messages of the exceptions a service (or the library, for what services pass on)
raises and its adapters answer as problem documents. Each must match a pattern of its service's texts
(`<pkg>/adapters/problem_texts.toml`, loaded into ServiceSpec.problem_texts) or of the library's.
An f-string's holes are read as a placeholder word, so a pattern must take any value there.
Then, through the running platform, a Chinese client gets the Chinese detail and an English one the English.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from imaging_common.allinone import build_platform
from imaging_common.problem_texts import LIBRARY, NO_TEXTS, Texts, localize
from imaging_testing import http_server
from imaging_testing.auth import issue_test_token

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_CODE = ROOT / "libs" / "common" / "imaging_common"
SERVICES = sorted(p for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists())
HOLE = "X1"  # what an f-string's {...} is read as

# Exceptions whose messages never reach an HTTP answer, with why (their wording stays English, for logs,
# DIMSE and HL7 peers). (service, exception class); "library" for imaging_common's.
SKIPPED: dict[tuple[str, str], str] = {
    # DICOM only: answered as DIMSE statuses to a modality, never to a person's browser.
    ("print-scp", "LayoutError"): "Basic Film Box layout refused to the modality as a DIMSE status",
    ("print-scp", "PrintFailure"): "pixel and attribute checks (domain/pixels.py) answered as DIMSE statuses",
    ("print-scp", "_Unsupported"): "fast DIMSE decoder falls back to pynetdicom; never answered",
    **{("worklist", name): "MPPS N-CREATE/N-SET refusals, answered as DIMSE statuses to the modality"
       for name in ("InvalidAttributeValue", "DuplicateInstance", "NoSuchInstance", "MissingAttributeValue",
                    "NoLongerUpdatable", "InvalidValue", "MissingAttribute", "MissingValue")},
    # Startup and configuration: the service refuses to start; the operator reads the log.
    ("registration", "BootstrapRefused"): "first admin's credentials checked at startup",
    ("print-scp", "StoreMisconfigured"): "S3 film store settings checked at startup",
    # Internal or background: logged and retried, never a request's answer.
    ("reporting", "NoWriter"): "internal: a receiver kind without a registered writer (a wiring bug)",
    ("critical-values", "DeliveryError"): "delivery worker's outcome, recorded on the delivery and retried",
    ("print-scp", "OcrUnavailable"): "the film pipeline falls back to matching without OCR",
    ("patient-portal", "SmsFailed"): "the sign-in route answers its own 503 (the SMS service is unavailable)",
}
# The library's exceptions whose messages services pass on in problem documents (registration's patients,
# receivers and notify targets, staff passwords); the library's other exceptions are startup, DICOM, HL7 or
# event errors, and its HTTPException details are walked too.
LIBRARY_PASSED_ON = {"EmpiError", "PersonNotFound", "InvalidIdentifier", "DestinationRefused", "WeakPassword"}
# Codes clients and pages already branch on: kept as they were when the texts moved into the services.
EXISTING_CODES = {
    "login-failed", "login-throttled", "login-required", "session-ended", "session-expired", "refresh-reused",
    "refresh-unknown", "refresh-malformed", "refresh-missing", "account-inactive", "token-expired",
    "token-invalid", "role-required", "invalid-request", "unstorable-value", "dependency-unavailable",
    "internal-error", "content-too-large", "starting", "no-service", "exam-not-found", "study-not-found",
    "check-in-no-exam", "qc-blocked", "signing-key-missing", "signing-key-pending", "critical-value-not-found",
    "queue-entry-not-found", "worklist-item-not-found", "staff-not-found", "report-not-found", "film-not-found",
    "film-image-missing", "share-not-found", "room-not-found", "queue-not-found", "screen-not-found"}
KEBAB = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _package(service: Path) -> Path:
    [package] = [p for p in service.iterdir() if (p / "app.py").exists()]
    return package


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts and "tests" not in p.parts)


def _texts(service: Path) -> Texts:
    spec = importlib.import_module(f"{_package(service).name}.app").SERVICE
    return spec.problem_texts  # type: ignore[no-any-return]


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)
    if isinstance(node, ast.IfExp):  # "... room" + (" (some queues are paused)" if paused else ""): the first
        return _text(node.body)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return left + right if left is not None and right is not None else None
    return None


TREES = {p: ast.parse(p.read_text(encoding="utf-8")) for p in
         [*_modules(LIBRARY_CODE), *(m for s in SERVICES for m in _modules(_package(s)))]}


def _exception_classes() -> set[str]:
    """Names of the exception classes defined in the library and the services (builtins excluded:
    a ValueError is a programming error unless an adapter turns it into a refusal of its own)."""
    roots = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)
             and issubclass(getattr(builtins, n), BaseException)}
    bases: dict[str, set[str]] = {}
    for tree in TREES.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases.setdefault(node.name, set()).update(filter(None, map(_name, node.bases)))
    known = set(roots)
    while grown := {c for c, b in bases.items() if c not in known and b & known}:
        known |= grown
    return known - roots


EXCEPTIONS = _exception_classes()


def _messages(files: list[Path], classes: set[str]) -> Iterator[tuple[str, str, str]]:
    """(class, where, message) of every HTTPException's or problem()'s detail and every message given to one
    of `classes`."""
    for path in files:
        tree = TREES[path]
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in classes:  # super().__init__(f"...") in the class
                for call in ast.walk(node):
                    if (isinstance(call, ast.Call) and _name(call.func) == "__init__"
                            and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Call)
                            and _name(call.func.value.func) == "super" and call.args):
                        if (text := _text(call.args[0])) is not None:
                            yield node.name, f"{path.relative_to(ROOT)}:{call.lineno}", text
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            if name in ("HTTPException", "StarletteHTTPException"):
                args = [kw.value for kw in node.keywords if kw.arg == "detail"] or node.args[1:2]
            elif name == "problem":  # imaging_common.problems.problem(status, title, detail)
                args = [kw.value for kw in node.keywords if kw.arg == "detail"] or node.args[2:3]
            elif name in classes:
                args = node.args[:1]
            else:
                continue
            if args and (text := _text(args[0])) is not None:
                yield name, f"{path.relative_to(ROOT)}:{node.lineno}", text


def _untranslated(owner: str, files: list[Path], classes: set[str], texts: Texts) -> list[str]:
    return [f"{where} {name}: {text!r}" for name, where, text in _messages(files, classes)
            if (owner, name) not in SKIPPED and localize(400, "Bad Request", text, "zh", texts).detail == text]


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_every_refusal_of_a_service_has_chinese(service: Path) -> None:
    files = _modules(_package(service))
    defined = {n.name for f in files for n in ast.walk(TREES[f]) if isinstance(n, ast.ClassDef)}
    classes = (defined | {"Refusal", "NotFound", "Conflict", "Invalid"}) & EXCEPTIONS
    assert _untranslated(service.name, files, classes, _texts(service)) == []


def test_every_refusal_of_the_library_has_chinese() -> None:
    assert _untranslated("library", _modules(LIBRARY_CODE), LIBRARY_PASSED_ON, NO_TEXTS) == []


def test_skipped_exceptions_still_exist() -> None:
    """An exception listed as never reaching HTTP that no longer exists is a stale excuse."""
    assert [key for key in SKIPPED if key[1] not in EXCEPTIONS] == []


def test_codes_are_kebab_case_and_the_existing_ones_kept() -> None:
    catalogues = [LIBRARY, *(_texts(s) for s in SERVICES)]
    codes = {d[1] for texts in catalogues for d in texts.details}
    assert sorted(c for c in codes if not KEBAB.fullmatch(c)) == []
    assert sorted(EXISTING_CODES - codes) == []
    for texts in catalogues:  # every Chinese wording fills exactly the pattern's groups
        for pattern, _, zh, _ in texts.compiled:
            used = {int(i) for i in re.findall(r"\{(\d+)\}", zh)}
            assert used <= set(range(pattern.groups)), (pattern.pattern, zh)


def test_several_refusals_in_one_detail_each_read_in_chinese() -> None:
    scheduling = _texts(ROOT / "services" / "scheduling")
    both = ("working-hours: room CT1 does not work from 2026-12-08 07:00 to 2026-12-08 07:15; "
            "technologist: no technologist of room CT1 is free at 2026-12-08 07:00")
    text = localize(422, "Booking refused", both, "zh", scheduling)
    assert text.code == "working-hours" and text.title == "预约未成功"
    assert text.detail == ("检查室 CT1 在 2026-12-08 07:00 至 2026-12-08 07:15 不工作；"
                           "检查室 CT1 在 2026-12-08 07:00 没有空闲的技师")
    # A message of its own may hold "; " ("...; reschedule"); one not known leaves the whole in English.
    queue = _texts(ROOT / "services" / "queue-calling")
    late = "A2: appointment at 2026-12-08T07:00:00+08:00 has passed; reschedule"
    assert localize(409, "Conflict", late, "zh", queue).detail == ("检查 A2 的预约时间 2026-12-08T07:00:00+08:00 "
                                                                   "已过，请改约")
    mixed = "fasting: 需空腹; no-slot: no slot satisfies every rule within 60 days"
    assert localize(422, "Booking refused", mixed, "zh", scheduling).detail == mixed


# Through the running platform (every service in one process, as `make run` serves it).
ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
EN = {"Accept-Language": "en"}


@pytest.fixture(scope="module")
async def platform_url(test_env):  # type: ignore[no-untyped-def]
    async with http_server(build_platform()) as url:
        yield url


@pytest.fixture(scope="module")
def headers(common_settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    token = issue_test_token(common_settings, roles=["admin", "senior-radiologist", "clerk"], username="texts")
    return {"Authorization": f"Bearer {token}"}


async def _both(client: httpx.AsyncClient, method: str, path: str, **kw: object) -> tuple[dict, dict]:
    auth = kw.pop("headers", {})
    zh = await client.request(method, path, headers={**auth, **ZH}, **kw)  # type: ignore[arg-type]
    en = await client.request(method, path, headers={**auth, **EN}, **kw)  # type: ignore[arg-type]
    assert zh.status_code == en.status_code and zh.status_code >= 400, (path, zh.text)
    assert zh.headers["content-language"] == "zh" and en.headers["content-language"] == "en"
    return zh.json(), en.json()


async def test_a_chinese_client_reads_chinese_an_english_one_english(platform_url: str, headers) -> None:
    async with httpx.AsyncClient(base_url=platform_url) as client:
        # registration: a failed sign-in (its own texts)
        zh, en = await _both(client, "POST", "/api/registration/auth/login",
                             json={"username": "nobody-texts", "password": "wrong-password", "totp": "000000"})
        assert zh["code"] == en["code"] == "login-failed"
        assert zh["detail"] == "用户名、密码或动态验证码错误"
        assert en["detail"] == "invalid username, password or TOTP code"
        # reporting: an unknown template
        zh, en = await _both(client, "GET", "/api/reporting/templates/no-such-template", headers=headers)
        assert zh["code"] == en["code"] == "template-not-found"
        assert zh["detail"] == "没有报告模板 no-such-template" and en["detail"] == "no template no-such-template"
        assert zh["title"] == "未找到" and en["title"] == "Not Found"
        # scheduling: a domain exception answered by its error route (a title of its own is kept in English)
        zh, en = await _both(client, "GET", "/api/scheduling/appointments/00000000-0000-0000-0000-000000000000",
                             headers=headers)
        assert zh["code"] == en["code"] == "appointment-not-found"
        assert zh["detail"].startswith("没有预约 ") and en["detail"].startswith("no appointment ")
        # the library's own words, in a service that has texts of its own
        zh, en = await _both(client, "GET", "/api/queue/rooms")
        assert zh["code"] == en["code"] == "login-required" and zh["detail"] == "请先登录"
