"""Chinese (and English) wording and stable codes of the platform's problem documents.

Services raise their refusals in English (`HTTPException(404, f"no room {room_id}")`, a `Refusal`);
`localize` gives each answer a stable `code` and, for a Chinese client, the Chinese text:

- titles: the HTTP status phrase ("Not Found") becomes its Chinese; a title of a service's own
  ("Booking refused") is kept unless listed in TITLES;
- details: DETAILS are patterns of the English messages the pages commonly show (auth, validation,
  outages, the refusals staff meet at their desks); a match gives its code and Chinese wording, with
  the pattern's groups carried over (a room id, a state). Others keep their English wording.

A code names what happened, never how it is worded: clients branch on it, people read the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


# How a check-in was looked up (queue calling's kinds), as the terminal names them.
CHECK_IN_KINDS = {"barcode": "申请单条码", "id_number": "身份证号", "card": "就诊卡", "appointment": "预约号"}


def _roles(text: str) -> str:
    return "、".join(ROLE_NAMES.get(r.strip(), r.strip()) for r in text.split(","))


# (pattern of the English detail, code, Chinese with {0}, {1}... for the groups). Matched in full.
DETAILS: list[tuple[str, str, str]] = [
    # sign-in and sessions (registration's auth routes, every service's token check)
    (r"invalid username, password or TOTP code", "login-failed", "用户名、密码或动态验证码错误"),
    (r"too many failed logins from this address; try again later", "login-throttled",
     "登录失败次数过多，请稍后再试"),
    (r"a bearer token is required", "login-required", "请先登录"),
    (r"session ended \(logged out, idle timeout or revoked\)", "session-ended",
     "登录已结束（已退出、空闲超时或被撤销），请重新登录"),
    (r"session reached its maximum lifetime; log in again", "session-expired", "登录已到最长时限，请重新登录"),
    (r"refresh token was already used; the session is revoked", "refresh-reused",
     "登录凭据已被使用过，为安全起见本次登录已作废，请重新登录"),
    (r"unknown refresh token", "refresh-unknown", "登录凭据无效，请重新登录"),
    (r"malformed refresh token", "refresh-malformed", "登录凭据无效，请重新登录"),
    (r"no refresh token", "refresh-missing", "没有可续期的登录，请重新登录"),
    (r"account no longer active", "account-inactive", "账号已停用"),
    (r"token expired", "token-expired", "登录已过期，请重新登录"),
    (r"malformed token|token signature invalid|token signed with an unknown key|token from an untrusted issuer"
     r"|token has no session|token claims rejected: .*|token algorithm .* is not accepted", "token-invalid",
     "登录凭据无效，请重新登录"),
    (r"requires one of the roles: (.+)", "role-required", "需要以下角色之一：{0}"),
    # the library's answers
    (r"the request does not match the schema", "invalid-request", "请求内容不符合要求"),
    (r"a value in the request cannot be stored or searched: (\w+)", "unstorable-value",
     "请求中有无法保存或查询的值（{0}）"),
    (r"a backing service is unreachable; retry shortly", "dependency-unavailable", "后台服务暂时无法连接，请稍后重试"),
    (r"an unexpected error was logged", "internal-error", "服务器发生意外错误，已记录，请联系信息科"),
    (r"request body over (\d+) bytes", "content-too-large", "请求内容超过 {0} 字节"),
    (r"service is starting", "starting", "服务正在启动，请稍候再试"),
    (r"no service serves this path", "no-service", "没有服务提供此地址"),
    # what staff meet at their desks (reporting, critical values, queue, print review, worklist)
    (r"no exam with accession number (.+)", "exam-not-found", "没有检查号为 {0} 的检查"),
    (r"no study with accession number (.+)", "study-not-found", "没有检查号为 {0} 的影像检查"),
    (r"no active exam matches this (\w+)", "check-in-no-exam", "没有与此{0}对应的待检检查"),
    (r"pre-sign QC found blockers: (.+)", "qc-blocked", "签名前质控发现必须修改的问题：{0}"),
    (r"(.+) has no approved signing key: .*", "signing-key-missing",
     "{0} 没有已批准的签名密钥：请先登记签名密钥，并由管理员批准"),
    (r"signing key (\S+) of (.+) awaits approval by an administrator", "signing-key-pending",
     "{1} 的签名密钥 {0} 尚待管理员批准"),
    (r"critical value (.+) does not exist", "critical-value-not-found", "危急值 {0} 不存在"),
    (r"no queue entry (\S+)", "queue-entry-not-found", "没有候诊记录 {0}"),
    (r"no worklist item (\S+)", "worklist-item-not-found", "没有工作列表项 {0}"),
    (r"no staff account (\S+)", "staff-not-found", "没有员工账号 {0}"),
    (r"no report (\S+)", "report-not-found", "没有报告 {0}"),
    (r"no film (\S+)|no such film", "film-not-found", "没有此胶片"),
    (r"the film's image is missing", "film-image-missing", "胶片图像缺失"),
    (r"no such share", "share-not-found", "分享链接无效或已过期"),
    (r"no room (\S+)", "room-not-found", "没有检查室 {0}"),
    (r"no queue (\S+)", "queue-not-found", "没有队列 {0}"),
    (r"no screen (\S+)", "screen-not-found", "没有候诊屏 {0}"),
]
_COMPILED = [(re.compile(pattern), code, zh) for pattern, code, zh in DETAILS]


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


def localize(status: int, title: str, detail: str | None, language: str) -> Text:
    """The code of a problem, and its title and detail in `language` ("zh" or "en")."""
    code = STATUS.get(status, ("error", ""))[0]
    zh_detail = None
    if detail:
        for pattern, detail_code, zh in _COMPILED:
            found = pattern.fullmatch(detail)
            if found:
                code = detail_code
                groups = [_roles(g) if detail_code == "role-required"
                          else CHECK_IN_KINDS.get(g, g) if detail_code == "check-in-no-exam" else g
                          for g in found.groups()]
                zh_detail = zh.format(*groups)
                break
    if language == "en":
        return Text(code, title, detail, "en")
    if title == _http_phrase(status) and status in STATUS:
        zh_title = STATUS[status][1]
    else:
        zh_title = TITLES.get(title, title)
    return Text(code, zh_title, zh_detail or detail, "zh")
