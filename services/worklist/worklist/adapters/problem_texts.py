"""The Chinese and stable codes of the worklist's refusals (imaging_common.problem_texts)."""

from imaging_common.problem_texts import Texts

TEXTS = Texts([
    (r"no worklist item (\S+)", "worklist-item-not-found", "没有工作列表项 {0}"),
    (r"item (\S+) is (\S+); only a scheduled step can be cancelled", "worklist-item-not-scheduled",
     "工作列表项 {0} 当前为 {1}，只有待检查的项目可以取消"),
    (r"no MPPS (\S+)", "mpps-not-found", "没有检查执行记录（MPPS）{0}"),
    (r"cannot (\S+) an MPPS that is (.+)", "mpps-transition", "检查执行记录（MPPS）当前为 {1}，不能{0}",
     {"update": "更新", "complete": "完成", "discontinue": "中止", "IN PROGRESS": "进行中",
      "COMPLETED": "已完成", "DISCONTINUED": "已中止"}),
    (r"date out of range: (\S+)", "date-out-of-range", "日期超出范围：{0}"),
    (r"the same accession number and protocol code appear twice in one import", "import-duplicate-step",
     "同一次导入中出现了重复的检查号和协议编码"),
    (r"conflicts with a stored step: (.+)", "import-conflict", "与已保存的检查步骤冲突，本次导入未保存：{0}"),
])
