"""The Chinese and stable codes of critical values' refusals (imaging_common.problem_texts)."""

from imaging_common.problem_texts import Texts

# States and steps of a critical value (domain/states.py), as the board names them.
STATES = {"awaiting-confirmation": "待确认", "notifying": "通知中", "notified": "已通知", "closed": "已闭环",
          "rejected": "已否决", "confirm": "确认", "reject": "否决", "delivered": "送达", "acknowledge": "接收确认",
          "document": "补记"}
OUTCOMES = {"reached": "已联系到", "no-answer": "无人接听", "wrong-number": "号码错误", "other": "其他"}

TEXTS = Texts([
    (r"critical value (\S+) does not exist", "critical-value-not-found", "危急值 {0} 不存在"),
    (r"cannot (\S+) a critical value that is (\S+)", "critical-value-transition", "危急值当前为“{1}”，不能{0}", STATES),
    (r"dictionary version (\S+) does not exist", "dictionary-version-not-found", "危急值字典版本 {0} 不存在"),
    (r"item codes must be unique within a version", "dictionary-duplicate-code", "同一版本内的项目代码不能重复"),
    (r"a dictionary version needs at least one item", "dictionary-empty", "字典版本至少需要一个项目"),
    (r"critical-value item (\S+) is not in dictionary version (\S+)", "dictionary-item-not-found",
     "危急值项目 {0} 不在字典版本 {1} 中"),
    (r"unknown escalation action (\S+); known: (.+)", "escalation-action-unknown", "未知的升级通知方式 {0}，可选：{1}"),
    (r"every step needs after_minutes > 0", "escalation-step-minutes",
     "每一级升级都需要大于 0 的等待分钟数（after_minutes）"),
    (r"ends_at must be after starts_at", "time-range-invalid", "结束时间必须晚于开始时间"),
    (r"end is too early: give a start as well", "time-range-start-missing",
     "结束时间早于默认开始时间：请同时给出开始时间"),
    (r"destination refused: (.+)", "destination-refused", "接收地址不被接受：{0}"),
    (r"accession (\S+) has no known order; send the patient", "accession-unknown",
     "检查号 {0} 没有对应的已知申请单：请同时提供患者信息"),
    (r"outcome must be one of (.+)", "phone-outcome-invalid", "电话结果必须是以下之一：{0}", OUTCOMES),
    (r"say who was reached \(called_person\)", "phone-person-missing", "请填写联系到的人（called_person）"),
    (r"phone task (\S+) does not exist", "phone-task-not-found", "电话通知任务 {0} 不存在"),
    (r"phone task (\S+) is already done \((.+)\)", "phone-task-done", "电话通知任务 {0} 已完成（{1}）", OUTCOMES),
    (r"manual record (\S+) does not exist", "manual-record-not-found", "人工登记记录 {0} 不存在"),
    (r"manual record (\S+) is already linked to (\S+)", "manual-record-linked", "人工登记记录 {0} 已关联到 {1}"),
    (r"manual record (\S+) is about accession (\S+), the critical value about (\S+)", "manual-record-mismatch",
     "人工登记记录 {0} 属于检查号 {1}，而危急值属于检查号 {2}"),
    (r"unknown source (\S+)", "source-unknown", "未知的危急值来源 {0}"),
    (r"the patient needs a patient_id", "patient-id-missing", "患者信息缺少患者编号（patient_id）"),
    (r"item (\S+) must be confirmed by a senior radiologist", "senior-confirmation-required",
     "危急值项目 {0} 须由上级医师确认"),
    (r"the doctor who found it cannot confirm it \(7\.1\.3 \(3\): ask a senior doctor\)", "self-confirmation",
     "发现危急值的医生不能自行确认（7.1.3（3）：请上级医师确认）"),
    (r"group_by must be one of (.+)", "group-by-invalid", "分组方式（group_by）必须是以下之一：{0}"),
])
