"""The Chinese and stable codes of scheduling's refusals (imaging_common.problem_texts)."""

from imaging_common.problem_texts import Texts

# Appointment statuses and steps (domain/states.py).
STATES = {"new": "新建", "proposed": "建议", "pending": "暂留", "booked": "已预约", "arrived": "已到达",
          "checked-in": "已签到", "fulfilled": "已完成", "cancelled": "已取消", "noshow": "未到检",
          "entered-in-error": "误录", "waitlist": "候补", "propose": "建议", "hold": "暂留", "book": "预约",
          "reschedule": "改约", "arrive": "到达", "check-in": "签到", "fulfil": "完成", "cancel": "取消",
          "expire": "过期", "no-show": "登记未到检", "enter-in-error": "标记误录"}

TEXTS = Texts([
    (r"no appointment (\S+)", "appointment-not-found", "没有预约 {0}"),
    (r"cannot (\S+) an appointment that is (\S+)", "appointment-transition", "预约当前为“{1}”，不能{0}", STATES),
    (r"no exam (\S+) requested by order (\S+)", "order-exam-not-found", "申请单 {1} 中没有检查 {0}"),
    (r"exam type (\S+) is not configured", "exam-type-not-configured", "检查项目 {0} 尚未配置"),
    (r"room (\S+) or its technologist was just booked at (.+)", "slot-taken", "检查室 {0} 或其技师在 {1} 刚被预约"),
    (r"room (\S+) was just booked at (.+)", "slot-taken", "检查室 {0} 在 {1} 刚被预约"),
    (r"no slot satisfies every rule within (\S+) days", "no-slot", "{0} 天内没有满足全部规则的时段"),
    (r"no slots satisfy every rule for these exams within the horizon", "no-arrangement",
     "在可预约期限内，没有能满足这些检查全部规则的时段"),
    (r"give both room_id and start, or neither for the earliest slot", "slot-choice-incomplete",
     "请同时给出检查室和开始时间，或都不填以预约最早的时段"),
    (r"slip link unknown, expired or for another appointment", "slip-link-invalid",
     "预约单链接无效、已过期或不属于此预约"),
    (r"slip links are unavailable \(Redis unreachable\); retry shortly", "slip-links-unavailable",
     "预约单链接暂不可用，请稍后重试"),
    # rooms, rules and the catalogue (administration)
    (r"no room (\S+)", "room-not-found", "没有检查室 {0}"),
    (r"unknown technologist\(s\): (.+)", "technologist-unknown", "未知的技师：{0}"),
    (r"the (.+) in the path and the body differ", "id-mismatch", "地址与请求内容中的{0}不一致",
     {"room id": "检查室编号", "name": "名称", "code": "编码", "exam_code": "检查编码", "ward_id": "病区编号"}),
    (r"end must be after start", "time-range-invalid", "结束时间必须晚于开始时间"),
    (r"unknown channel (\S+); known: (.+)", "channel-unknown", "未知的通知渠道 {0}，可选：{1}"),
    (r"unknown channel\(s\) (.+); known: (.+)", "channel-unknown", "未知的通知渠道 {0}，可选：{1}"),
    (r"unknown rule type (\S+); known: (.+)", "rule-type-unknown", "未知的规则类型 {0}，可选：{1}"),
    (r"parameters of (\S+) rule are invalid", "rule-parameters-invalid", "{0} 规则的参数无效"),
], titles={"Booking refused": "预约未成功", "Slot taken": "时段已被占用",
           "Transition not allowed": "当前状态不允许此操作", "Invalid rule": "规则无效",
           "Unknown reference": "引用的对象不存在", "Still referenced": "仍被引用，不能删除",
           "No slot": "没有可预约的时段", "No arrangement": "无法安排"})
