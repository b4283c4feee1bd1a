"""The Chinese and stable codes of the patient portal's refusals (imaging_common.problem_texts)."""

from imaging_common.problem_texts import Texts

TEXTS = Texts([
    (r"a patient session is required", "patient-login-required", "请先登录"),
    (r"session ended \(signed out, idle or expired\)", "patient-session-ended",
     "登录已结束（已退出或已超时），请重新登录"),
    (r"not a patient token|not a valid patient token", "patient-token-invalid", "登录凭据无效，请重新登录"),
    (r"not a mobile phone number", "phone-invalid", "不是有效的手机号码"),
    (r"too many sign-in attempts, try again later", "sign-in-throttled", "登录尝试次数过多，请稍后再试"),
    (r"the code is wrong or no longer valid", "sms-code-invalid", "验证码错误或已失效"),
    (r"the SMS service is unavailable, try again later", "sms-unavailable", "短信服务暂不可用，请稍后再试"),
    (r"no exam (\S+)", "exam-not-found", "没有检查 {0}"),
    (r"no final report for exam (\S+)", "final-report-not-found", "检查 {0} 还没有正式报告"),
    (r"no report (\S+)", "report-not-found", "没有报告 {0}"),
    (r"no share link (\S+)", "share-not-found", "没有分享链接 {0}"),
    (r"this share link is not valid", "share-invalid", "分享链接无效"),
    (r"this share link was withdrawn", "share-revoked", "分享链接已被撤销"),
    (r"this share link has expired", "share-expired", "分享链接已过期"),
])
