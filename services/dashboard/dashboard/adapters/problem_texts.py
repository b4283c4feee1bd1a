"""The Chinese and stable codes of the dashboard's refusals (imaging_common.problem_texts)."""

from imaging_common.problem_texts import Texts

QC_KINDS = {"image": "影像", "request": "申请单", "report": "报告"}

TEXTS = Texts([
    (r"no device (\S+)", "device-not-found", "没有设备 {0}"),
    (r"metric must be one of (.+)", "metric-invalid", "指标（metric）必须是以下之一：{0}"),
    (r"period must be one of (.+)", "period-invalid", "周期（period）必须是以下之一：{0}"),
    (r"group_by must be one of (.+)", "group-by-invalid", "分组方式（group_by）必须是以下之一：{0}"),
    (r"end must be after start", "time-range-invalid", "结束时间必须晚于开始时间"),
    (r"end is too early: give a start as well", "time-range-start-missing",
     "结束时间早于默认开始时间：请同时给出开始时间"),
    (r"utilisation is filtered by modality, room_id or campus, not (.+)", "utilisation-filter-invalid",
     "设备利用率只能按设备类型、检查室或院区筛选，不能按 {0}"),
    (r"filters are (.+)", "filter-invalid", "可用的筛选条件：{0}"),
    (r"a report review needs a score \(0-100\)", "qc-score-missing", "报告质控需要评分（0-100）"),
    (r"an image or request review needs a grade: 甲, 乙, 丙 or 丁", "qc-grade-missing",
     "影像或申请单质控需要评级：甲、乙、丙或丁"),
    (r"exam (\S+) is not drawn for (\S+) QC", "qc-item-not-found", "检查 {0} 未被抽中进行{1}质控", QC_KINDS),
    (r"(\S+) has already reviewed (\S+): a second reader must be someone else", "qc-same-reader",
     "{0} 已评阅过检查 {1}：第二评阅人须为他人"),
    (r"(\S+) already has two readers", "qc-readers-complete", "检查 {0} 已有两位评阅人"),
    (r"report QC is read by radiologists", "qc-report-readers", "报告质控须由诊断医师评阅"),
])
