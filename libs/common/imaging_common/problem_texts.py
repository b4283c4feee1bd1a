"""Chinese (and English) wording and stable codes of the platform's problem documents.

Services raise their refusals in English (`HTTPException(404, f"no room {room_id}")`, a `Refusal`);
`localize` gives each answer a stable `code` and, for a Chinese client, the Chinese text:

- titles: the HTTP status phrase ("Not Found") becomes its Chinese; a title of a service's own
  ("Booking refused") comes from its texts' titles, else is kept;
- details: patterns of the English messages, each with its code and Chinese wording, the pattern's
  groups carried over (a room id, a state; a group that is itself a known message is translated too).
  Each service keeps the texts of its own refusals beside its code (`<pkg>/adapters/problem_texts.py`,
  a `Texts` handed over as `ServiceSpec.problem_texts`) and they are tried first; DETAILS here hold only
  the library's own messages (sign-in and tokens, validation, outages, the EMPI, outbound destinations).
  A message no pattern names keeps its English wording.

A code names what happened, never how it is worded: clients branch on it, people read the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

# By status: the code of a problem no DETAILS pattern names, and the Chinese of its HTTP phrase.
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

# Titles of the library's own (not HTTP phrases) that pages show.
TITLES: dict[str, str] = {
    "Invalid request": "请求内容不符合要求",
    "Service Unavailable": "服务暂不可用",
    "Unprocessable Content": "内容不符合要求",
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


# The library's own messages: sign-in and tokens (imaging_common.auth), validation, outages, the
# library's routes (peers, dead letters, assets), the EMPI and outbound destinations services pass on.
DETAILS: list[Detail] = [
    # sessions and tokens (every service's token check)
    (r"a bearer token is required", "login-required", "请先登录"),
    (r"session ended \(logged out, idle timeout or revoked\)", "session-ended",
     "登录已结束（已退出、空闲超时或被撤销），请重新登录"),
    (r"session reached its maximum lifetime; log in again", "session-expired", "登录已到最长时限，请重新登录"),
    (r"refresh token was already used; the session is revoked", "refresh-reused",
     "登录凭据已被使用过，为安全起见本次登录已作废，请重新登录"),
    (r"unknown refresh token", "refresh-unknown", "登录凭据无效，请重新登录"),
    (r"malformed refresh token", "refresh-malformed", "登录凭据无效，请重新登录"),
    (r"token expired", "token-expired", "登录已过期，请重新登录"),
    (r"malformed token|token signature invalid|token signed with an unknown key|token from an untrusted issuer"
     r"|token has no session|token claims rejected: .*|token algorithm .* is not accepted", "token-invalid",
     "登录凭据无效，请重新登录"),
    (r"requires one of the roles: (.+)", "role-required", "需要以下角色之一：{0}", ROLE_NAMES),
    (r"password must have at least (\S+) characters", "password-too-short", "密码至少需要 {0} 个字符"),
    # the library's answers
    (r"the request does not match the schema", "invalid-request", "请求内容不符合要求"),
    (r"a value in the request cannot be stored or searched: (\w+)", "unstorable-value",
     "请求中有无法保存或查询的值（{0}）"),
    (r"a backing service is unreachable; retry shortly", "dependency-unavailable", "后台服务暂时无法连接，请稍后重试"),
    (r"an unexpected error was logged", "internal-error", "服务器发生意外错误，已记录，请联系信息科"),
    (r"request body over (\S+) bytes", "content-too-large", "请求内容超过 {0} 字节"),
    (r"service is starting", "starting", "服务正在启动，请稍候再试"),
    (r"no service serves this path", "no-service", "没有服务提供此地址"),
    (r"no asset (.+)", "asset-not-found", "没有此页面文件 {0}"),
    (r"no known peer (.+)", "peer-not-found", "没有已登记的对接系统 {0}"),
    (r"service (.+) has no event queue", "event-queue-not-found", "服务 {0} 没有事件队列"),
    (r"name the event_ids to purge, or set all=true to purge every dead letter", "purge-needs-selection",
     "请列出要清除的事件（event_ids），或设置 all=true 清除全部死信"),
    # the EMPI (registration's patients)
    (r"no person (\S+)", "person-not-found", "没有患者 {0}"),
    (r"broken merge chain", "merge-chain-broken", "患者合并记录链已损坏，请联系信息科"),
    (r"no pending change (\S+)", "pending-change-not-found", "没有待确认的修改 {0}"),
    (r"a person cannot be merged into itself", "merge-into-itself", "不能将患者合并到其本人"),
    (r"only active persons can be merged", "merge-inactive", "只能合并在用的患者记录"),
    (r"(\S+) is not merged", "not-merged", "{0} 未被合并"),
    (r"no merge recorded for this person", "merge-not-found", "此患者没有合并记录"),
    (r"no such review item", "review-item-not-found", "没有此待审核项"),
    (r"review item already (\S+)", "review-item-decided", "此待审核项已处理（{0}）",
     {"merged": "已合并", "distinct": "已确认为不同患者", "resolved": "已处理"}),
    (r"the survivor must be one of the two persons", "survivor-invalid", "保留的患者必须是两者之一"),
    (r"unknown decision (.+)", "decision-unknown", "未知的处理方式 {0}"),
    # identifiers (the EMPI's checks, e.g. registration's "identifier refused: ...")
    (r"15-digit first-generation ID number: convert it to 18 characters", "id-number-first-generation",
     "15 位一代身份证号：请换算为 18 位"),
    (r"a resident ID number has 17 digits and a check digit or X", "id-number-malformed",
     "居民身份证号应为 17 位数字加 1 位校验码（数字或 X）"),
    (r"the region code names no province", "id-number-region", "身份证号的地区码不对应任何省份"),
    (r"the embedded birth date is out of range", "id-number-birth-date", "身份证号中的出生日期超出范围"),
    (r"the embedded birth date is not a date", "id-number-birth-date", "身份证号中的出生日期不是有效日期"),
    (r"the check digit does not match \(a digit is wrong or two are swapped\)", "id-number-check-digit",
     "身份证号校验位不符（有一位写错或两位颠倒）"),
    (r"not a 15-digit ID number", "id-number-malformed", "不是 15 位身份证号"),
    (r"empty (.+) number", "identifier-empty", "{0} 号码为空"),
    (r"malformed (.+) number", "identifier-malformed", "{0} 号码格式不正确"),
    (r"(.+) number longer than 64 characters", "identifier-too-long", "{0} 号码超过 64 个字符"),
    (r"(.+) number must have 1 to 64 characters", "identifier-length", "{0} 号码应为 1 至 64 个字符"),
    # outbound destinations (receivers and notify targets a service checks before it stores them)
    (r"no host", "destination-no-host", "地址中没有主机名"),
    (r"(.+) is not in IMAGING_OUTBOUND_ALLOW", "destination-not-allowed",
     "{0} 不在允许外发的地址列表（IMAGING_OUTBOUND_ALLOW）中"),
    (r"(.+) is not an http\(s\) URL", "destination-not-http", "{0} 不是 http(s) 地址"),
    (r"credentials do not go in a receiver's URL", "destination-credentials", "接收方地址中不能包含用户名或密码"),
    (r"(.+) resolves to a cloud metadata address \((.+)\)", "destination-metadata",
     "{0} 解析到云平台元数据地址（{1}），不允许外发"),
    (r"(.+) resolves to (.+): not public, not in IMAGING_OUTBOUND_ALLOW", "destination-private",
     "{0} 解析到内部地址 {1}，且不在允许外发的地址列表中"),
    (r"(.+) does not resolve(?:: (.+))?", "destination-unresolved", "{0} 无法解析"),
    (r"IMAGING_OUTBOUND_ALLOW: (.+) is neither a host, a \.domain nor a network", "outbound-allow-invalid",
     "IMAGING_OUTBOUND_ALLOW 中的 {0} 既不是主机名、域名后缀，也不是网段"),
]

LIBRARY = Texts(DETAILS, TITLES)
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
        zh_title = texts.titles.get(title) or TITLES.get(title, title)
    return Text(code, zh_title, matched[1] if matched else detail, "zh")
