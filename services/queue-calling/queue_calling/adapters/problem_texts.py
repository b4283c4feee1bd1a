"""The Chinese and stable codes of queue calling's refusals (imaging_common.problem_texts)."""

from imaging_common.problem_texts import Texts

# How a check-in was looked up, as the terminal names them.
CHECK_IN_KINDS = {"barcode": "申请单条码", "id_number": "身份证号", "card": "就诊卡", "appointment": "预约号"}
# States and steps of a queue entry (domain/states.py).
PREPARATIONS = {"none": "无特殊准备", "injection": "注射", "anaesthesia": "麻醉"}
STATES = {"waiting": "候诊", "called": "已呼叫", "skipped": "已过号", "in_exam": "检查中", "done": "已完成",
          "cancelled": "已取消", "check_in": "签到", "call": "呼叫", "recall": "重呼", "skip": "过号",
          "return": "回到队列", "restore": "恢复候诊", "start": "开始检查", "finish": "完成检查", "cancel": "取消",
          "transfer": "转队列", "reorder": "调整顺序"}

TEXTS = Texts([
    (r"no active exam matches this (\w+)", "check-in-no-exam", "没有与此{0}对应的待检检查", CHECK_IN_KINDS),
    (r"this (\w+) matches several patients; scan the application form barcode instead", "check-in-ambiguous",
     "此{0}对应多位患者，请改扫申请单条码", CHECK_IN_KINDS),
    (r"exam (.+) was already performed: it is not checked in again", "check-in-performed",
     "检查 {0} 已做完，不能再次签到"),
    (r"exam (\S+) is already checked in as (\S+) \((\S+)\)", "check-in-duplicate", "检查 {0} 已签到，排队号 {1}（{2}）",
     STATES),
    (r"no queue takes (\S+) exam (\S+) \((.+)\); add a placement rule", "check-in-no-queue",
     "没有队列接收 {0} 检查 {1}（{2}），请添加分诊规则", PREPARATIONS),
    (r"identifier kind must be one of (.+)", "check-in-kind-invalid", "签到方式必须是以下之一：{0}", CHECK_IN_KINDS),
    (r"preparation must be one of (.+)", "preparation-invalid", "检查准备必须是以下之一：{0}", PREPARATIONS),
    (r"unknown categories (.+); known: (.+)", "category-unknown", "未知的患者类别 {0}，可选：{1}"),
    (r"no queue entry (\S+)", "queue-entry-not-found", "没有候诊记录 {0}"),
    (r"cannot (\S+) an entry that is (\S+)", "queue-entry-transition", "候诊记录当前为“{1}”，不能{0}", STATES),
    (r"the entry was changed by another terminal; reload and try again", "queue-entry-changed",
     "此候诊记录已被其他终端修改，请刷新后重试"),
    (r"the entry keeps moving; try again", "queue-entry-busy", "此候诊记录正在变动，请重试"),
    (r"(\S+) patient\(s\) already called to (.+) \(cap (\S+)\); start or skip one first", "door-cap-reached",
     "已有 {0} 位患者被叫到{1}（上限 {2}），请先开始检查或过号一位"),
    (r"room (\S+) serves no queue", "room-without-queue", "检查室 {0} 没有对应的队列"),
    (r"room (\S+) does not serve queue (\S+); transfer the patient first", "room-not-serving-queue",
     "检查室 {0} 不服务队列 {1}，请先将患者转到相应队列"),
    (r"the patient is already in that queue", "already-in-queue", "患者已在该队列中"),
    (r"reorder needs another waiting patient of the same queue", "reorder-needs-peer",
     "调整顺序需要同一队列中另一位候诊患者"),
    (r"skip rule mode must be one of (.+)", "skip-rule-invalid", "过号规则方式必须是以下之一：{0}"),
    (r"skip rule after_n needs n >= 1", "skip-rule-invalid", "过号规则 after_n 需要 n ≥ 1"),
    (r"skip rule end_of_slice needs slice_minutes > 0", "skip-rule-invalid",
     "过号规则 end_of_slice 需要 slice_minutes > 0"),
    (r"group must be one of (.+)", "group-invalid", "分组方式必须是以下之一：{0}"),
    (r"no room (\S+)", "room-not-found", "没有检查室 {0}"),
    (r"no queue (\S+)", "queue-not-found", "没有队列 {0}"),
    (r"no screen (\S+)", "screen-not-found", "没有候诊屏 {0}"),
    (r"no placement rule (\S+)", "placement-rule-not-found", "没有分诊规则 {0}"),
    (r"unknown queue\(s\): (.+)", "queue-unknown", "未知的队列：{0}"),
    (r"unknown queue (\S+)", "queue-unknown", "未知的队列 {0}"),
    (r"unknown room\(s\): (.+)", "room-unknown", "未知的检查室：{0}"),
    (r"screen kind must be hall or door", "screen-kind-invalid", "候诊屏类型必须是大厅屏（hall）或门口屏（door）"),
    (r"a door screen shows exactly one room", "door-screen-rooms", "门口屏只能显示一个检查室"),
    (r"mask_rule\.mode must be middle, keep_first or none", "mask-rule-invalid",
     "姓名遮挡方式必须是 middle、keep_first 或 none"),
    (r"ids are 1-64 characters of letters, digits and _ \. : -", "id-invalid",
     "编号应为 1 至 64 个字母、数字或 _ . : - 字符"),
    (r"notify target refused: (.+)", "notify-target-refused", "通知地址不被接受：{0}"),
])
