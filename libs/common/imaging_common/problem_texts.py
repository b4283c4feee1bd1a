"""Chinese (and English) wording and stable codes of the platform's problem documents.

Services raise their refusals in English (`HTTPException(404, f"no room {room_id}")`, a `Refusal`);
`localize` gives each answer a stable `code` and, for a Chinese client, the Chinese text:

- titles: the HTTP status phrase ("Not Found") becomes its Chinese; a title of a service's own
  ("Booking refused") comes from its texts' titles, else is kept;
- details: patterns of the English messages, each with its code and Chinese wording, the pattern's
  groups carried over (a room id, a state; a group that is itself a known message is translated too).
  Each service keeps the texts of its own refusals beside its code, as data (`<pkg>/adapters/
  problem_texts.toml`, which `ServiceSpec` loads into its `problem_texts`) and they are tried first;
  the library's own messages are its catalogue (sign-in and tokens, validation, outages, the EMPI,
  outbound destinations). A message no pattern names keeps its English wording.

A code names what happened, never how it is worded: clients branch on it, people read the text.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

# By status: the code of a problem no pattern names, and the Chinese of its HTTP phrase.
STATUS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "请求有误"),
    401: ("unauthorized", "未登录或登录已失效"),
    403: ("forbidden", "无权限"),
    404: ("not-found", "未找到"),
    405: ("method-not-allowed", "不支持此操作"),
    409: ("conflict", "操作冲突"),
    412: ("precondition-failed", "内容已被他人修改"),
    413: ("content-too-large", "请求内容过大"),
    415: ("unsupported-media-type", "不支持的内容格式"),
    422: ("invalid", "内容不符合要求"),
    428: ("precondition-required", "缺少版本信息"),
    429: ("too-many-requests", "请求过于频繁"),
    500: ("internal-error", "服务器内部错误"),
    502: ("bad-gateway", "上游服务出错"),
    503: ("unavailable", "服务暂不可用"),
    504: ("gateway-timeout", "上游服务超时"),
}


ROLE_NAMES = {"clerk": "登记员", "technologist": "技师", "nurse": "护士", "radiologist": "诊断医师",
              "senior-radiologist": "审核医师", "clinician": "临床医生", "admin": "管理员", "it-ops": "信息科运维"}

# (pattern of the English detail, code, Chinese with {0}, {1}... for the groups[, words]). Matched in full;
# `words` gives the Chinese of a group's value, or of each item of a comma-separated list ("clerk, admin").
Detail = tuple[str, str, str] | tuple[str, str, str, Mapping[str, str]]
_Compiled = tuple[re.Pattern[str], str, str, Mapping[str, str]]


@dataclass(frozen=True)
class Texts:
    """The Chinese of one party's refusals: a service's (ServiceSpec.problem_texts) or the library's."""

    details: Sequence[Detail] = ()
    titles: Mapping[str, str] = field(default_factory=dict)  # a title of its own -> its Chinese
    compiled: tuple[_Compiled, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple((re.compile(d[0]), d[1], d[2], d[3] if len(d) > 3 else {}) for d in self.details)
        object.__setattr__(self, "compiled", compiled)

    @classmethod
    def from_toml(cls, path: Path) -> Texts:
        """A message catalogue kept as data, beside its module (whoever translates edits it, not code):
        `[titles]` English -> Chinese; `[words.<name>]` the Chinese of values inside messages; each
        `[[detail]]` a `pattern`, `code` and `zh`, and optionally `words = "<name>"` (its own, or the
        library's "roles")."""
        with path.open("rb") as f:
            data = tomllib.load(f)
        words = {"roles": ROLE_NAMES, **data.get("words", {})}
        details: list[Detail] = [(d["pattern"], d["code"], d["zh"], words[d["words"]]) if "words" in d
                                 else (d["pattern"], d["code"], d["zh"]) for d in data.get("detail", [])]
        return cls(details, data.get("titles", {}))


# The library's own messages (sign-in and tokens, validation, outages, its routes, the EMPI, outbound
# destinations): the catalogue problem_texts.toml beside this module.
LIBRARY = Texts.from_toml(Path(__file__).with_suffix(".toml"))
NO_TEXTS = Texts()


@dataclass(frozen=True)
class Text:
    code: str
    title: str
    detail: str | None
    language: str


def _http_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _group(value: str | None, words: Mapping[str, str], catalogues: tuple[Texts, ...]) -> str:
    if value is None:
        return ""
    if value in words:
        return words[value]
    items = [v.strip() for v in value.split(",")]
    if words and all(item in words for item in items):
        return "、".join(words[item] for item in items)
    for texts in catalogues:  # a message carried in another ("identifier refused: <the EMPI's reason>")
        for pattern, _, zh, inner_words in texts.compiled:
            found = pattern.fullmatch(value)
            if found:
                return zh.format(*(inner_words.get(g, g) if g else "" for g in found.groups()))
    return value


def _match_one(detail: str, catalogues: tuple[Texts, ...]) -> tuple[str, str] | None:
    for texts in catalogues:
        for pattern, code, zh, words in texts.compiled:
            found = pattern.fullmatch(detail)
            if found:
                return code, zh.format(*(_group(g, words, catalogues) for g in found.groups()))
    return None


def _match_parts(parts: list[str], catalogues: tuple[Texts, ...]) -> list[tuple[str, str]] | None:
    """Each of several refusals joined with "; " (a booking's broken constraints, the exams of one check-in),
    the shortest known message first: a message of its own may hold "; " too ("...; reschedule")."""
    if not parts:
        return []
    for end in range(1, len(parts) + 1):
        head = _match_one("; ".join(parts[:end]), catalogues)
        rest = _match_parts(parts[end:], catalogues) if head else None
        if head and rest is not None:
            return [head, *rest]
    return None


def _match(detail: str, catalogues: tuple[Texts, ...]) -> tuple[str, str] | None:
    """The code and Chinese of a detail; of several refusals joined with "; ", the first's code and each
    one's Chinese."""
    matched = _match_parts(detail.split("; "), catalogues)
    return (matched[0][0], "；".join(text for _, text in matched)) if matched else None


def localize(status: int, title: str, detail: str | None, language: str, texts: Texts = NO_TEXTS) -> Text:
    """The code of a problem, and its title and detail in `language` ("zh" or "en"); `texts` are the
    answering service's, tried before the library's."""
    catalogues = (texts, LIBRARY)
    code = STATUS.get(status, ("error", ""))[0]
    matched = _match(detail, catalogues) if detail else None
    if matched:
        code = matched[0]
    if language == "en":
        return Text(code, title, detail, "en")
    if title == _http_phrase(status) and status in STATUS:
        zh_title = STATUS[status][1]
    else:
        zh_title = texts.titles.get(title) or LIBRARY.titles.get(title, title)
    return Text(code, zh_title, matched[1] if matched else detail, "zh")
