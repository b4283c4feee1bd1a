"""The Chinese and stable codes of registration's refusals (imaging_common.problem_texts)."""

from imaging_common.problem_texts import ROLE_NAMES, Texts

TEXTS = Texts([
    # sign-in and sessions (its auth routes)
    (r"invalid username, password or TOTP code", "login-failed", "用户名、密码或动态验证码错误"),
    (r"too many failed logins from this address; try again later", "login-throttled",
     "登录失败次数过多，请稍后再试"),
    (r"too many failed logins; retry after (\S+) s", "login-throttled", "登录失败次数过多，请 {0} 秒后再试"),
    (r"no refresh token", "refresh-missing", "没有可续期的登录，请重新登录"),
    (r"account no longer active", "account-inactive", "账号已停用"),
    # staff accounts
    (r"no staff account (\S+)", "staff-not-found", "没有员工账号 {0}"),
    (r"username (\S+) is taken", "username-taken", "用户名 {0} 已被使用"),
    (r"unknown role\(s\) (.+); known: (.+)", "role-unknown", "未知的角色 {0}，可选：{1}", ROLE_NAMES),
    (r"a staff account needs at least one role", "role-missing", "员工账号至少需要一个角色"),
    (r"username: 2-64 of a-z 0-9 \. _ -, starting with a letter or digit", "username-invalid",
     "用户名应为 2 至 64 个小写字母、数字或 . _ - 字符，并以字母或数字开头"),
    (r"TOTP secret must be base32 of at least 16 characters \(80 bits\)", "totp-secret-invalid",
     "动态验证码密钥应为至少 16 个字符（80 位）的 base32 编码"),
    # patients and orders
    (r"identifier refused: (.+)", "identifier-refused", "证件号不被接受：{0}"),
    (r"nothing to change: send at least one field besides the reason", "nothing-to-change",
     "没有要修改的内容：除原因外请至少修改一项"),
    (r"no order (\S+)", "order-not-found", "没有申请单 {0}"),
    (r"order (\S+) was cancelled; it cannot change", "order-cancelled", "申请单 {0} 已取消，不能再修改"),
    (r"order already received as (\S+)", "order-duplicate", "此申请单已接收，编号 {0}"),
    (r"no such asset", "asset-not-found", "没有此页面文件"),
])
