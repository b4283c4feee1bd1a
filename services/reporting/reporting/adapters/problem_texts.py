"""The Chinese and stable codes of reporting's refusals (imaging_common.problem_texts)."""

from imaging_common.problem_texts import Texts

# States and steps of a report (domain/states.py) and the grades that take them (domain/workflow.py).
STATES = {"none": "未写报告", "draft": "草稿", "preliminary": "初诊报告", "consultation": "会诊中", "final": "审核报告",
          "amendment-requested": "已申请修改", "amending": "修改中", "withdrawn": "已撤回", "cancelled": "已取消",
          "save": "保存", "return": "退回", "consult": "提交会诊", "close-consultation": "结束会诊",
          "request-amendment": "申请修改", "approve-amendment": "批准修改", "reject-amendment": "驳回修改",
          "sign-amended": "签发修改后的报告", "withdraw": "撤回", "cancel": "取消"}
GRADES = {"trainee": "住院/进修医师", "radiologist": "诊断医师", "senior": "审核医师", "clinician": "临床医生",
          "admin": "管理员", **STATES}

TEXTS = Texts([
    (r"no exam with accession number (.+)", "exam-not-found", "没有检查号为 {0} 的检查"),
    (r"no report (\S+)", "report-not-found", "没有报告 {0}"),
    (r"report (\S+) has no version (\S+)", "report-version-not-found", "报告 {0} 没有第 {1} 版"),
    (r"pre-sign QC found blockers: (.+)", "qc-blocked", "签名前质控发现必须修改的问题：{0}"),
    (r"(.+) has no approved signing key: .*", "signing-key-missing",
     "{0} 没有已批准的签名密钥：请先登记签名密钥，并由管理员批准"),
    (r"signing key (\S+) of (.+) awaits approval by an administrator", "signing-key-pending",
     "{1} 的签名密钥 {0} 尚待管理员批准"),
    (r"signing key (\S+) cannot be unlocked \(secret changed\?\)", "signing-key-locked",
     "签名密钥 {0} 无法解锁（密钥口令可能已更改），请联系信息科"),
    (r"you already have an active or pending signing key", "signing-key-exists", "您已有在用或待批准的签名密钥"),
    (r"cannot (\S+) a report in state (\S+); possible: (.+)", "report-transition",
     "报告当前为“{1}”，不能{0}；可执行：{2}", STATES),
    (r"(\S+) from (\S+) requires grade (.+)", "grade-required", "{0}（当前为“{1}”）需要以下级别：{2}", GRADES),
    (r"four eyes: (.+) must be someone else than (.+) \(this site does not allow single-reader operation\)",
     "second-reader-required", "双人审核：{0}必须由 {1} 以外的人完成（本院不允许单人出具报告）",
     {"the final signer (the preliminary was signed by that reader)": "审核签发（初诊报告由此人签署）",
      "whoever decides an amendment request (the request was made by that person)":
          "修改申请的审批（申请由此人提出）"}),
    (r"unknown step (\S+); steps: (.+)", "step-unknown", "未知的操作 {0}，可选：{1}"),
    (r"amendments go through /reports/\{id\}/amendments \(they need a reason\)", "amendment-needs-reason",
     "修改报告须通过修改申请提交（需要填写原因）"),
    (r"the report is at version (\S+), not (\S+): reload it", "report-version-stale",
     "报告已更新到第 {0} 版（您编辑的是第 {1} 版），请刷新后再改"),
    (r"a report in state (\S+) cannot be edited", "report-not-editable", "“{0}”状态的报告不能编辑", STATES),
    (r"no approved amendment request for this report", "amendment-not-approved", "此报告没有已批准的修改申请"),
    (r"the template can only change before the report is final", "template-locked", "报告审核签发后不能更换模板"),
    (r"the report is not in consultation", "report-not-in-consultation", "此报告不在会诊中"),
    (r"give field_id and/or code", "field-or-code-required", "请给出字段（field_id）或编码（code）"),
    (r"hl7apy \(strict v2\.5\.1\): (.+)", "hl7-invalid", "HL7 v2.5.1 校验未通过：{0}"),
    (r"until is too early: give since as well", "time-range-start-missing",
     "截止时间早于默认开始时间：请同时给出开始时间"),
    # templates and phrases
    (r"no template (\S+)", "template-not-found", "没有报告模板 {0}"),
    (r"the body's id differs from the URL's", "id-mismatch", "请求内容中的编号与地址中的不一致"),
    (r"template larger than 2 MB", "template-too-large", "模板文件超过 2 MB"),
    (r"MRRT templates are UTF-8 HTML", "template-not-utf8", "MRRT 模板应为 UTF-8 编码的 HTML 文件"),
    (r"not an MRRT template we can read: (.+)", "template-unreadable", "无法读取此 MRRT 模板：{0}"),
    (r"not an HTML5 document", "template-not-html5", "不是 HTML5 文档"),
    (r"no <section> and no fields found: not an MRRT template", "template-empty",
     "没有找到任何章节（<section>）或字段：不是 MRRT 模板"),
    (r"template attributes are not well-formed XML: (.+)", "template-attributes-malformed",
     "模板属性不是格式正确的 XML：{0}"),
    (r"department phrases are kept by senior radiologists", "department-phrases-senior",
     "科室常用语由审核医师维护"),
    (r"no phrase (\S+) of yours", "phrase-not-found", "您没有常用语 {0}"),
    (r"no department phrase (\S+)", "department-phrase-not-found", "没有科室常用语 {0}"),
    # report receivers
    (r"an HL7 receiver needs host and port", "receiver-hl7-address", "HL7 接收方需要主机和端口"),
    (r"a FHIR receiver needs url", "receiver-fhir-url", "FHIR 接收方需要地址（url）"),
    (r"destination refused: (.+)", "destination-refused", "接收地址不被接受：{0}"),
])
