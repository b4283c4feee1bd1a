"""The Chinese and stable codes of the dashboard's refusals (imaging_common.problem_texts)."""

from imaging_common.problem_texts import Texts

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
])
