// The radiologists' page: worklist, editor with template fields and phrases, priors, QC, sign and amend.
"use strict";
const api = ImagingShell.api("/api/reporting");
const $ = (id) => document.getElementById(id);
const STATE = { none: "未写", draft: "草稿", preliminary: "初诊", consultation: "会诊", final: "已审核",
  "amendment-requested": "申请修改", amending: "修改中", withdrawn: "已收回", cancelled: "已取消" };
const ACTION = { save: "保存", preliminary: "初诊签名", final: "审核签发",
  "return": "退回", consult: "提交会诊", "close-consultation": "结束会诊",
  "sign-amended": "修改签发", withdraw: "收回", cancel: "取消" };
let current = null, focused = "findings", qcTimer = null, templates = [], shownTemplate = {};
const EDITABLE = ["none", "draft", "preliminary"];  // the template may change until the report is final
const SEX = { M: "男", F: "女", O: "其他", U: "未知" };
const VERIFIED = { valid: "签名有效", unsigned: "未签名", tampered: "签名后内容被改动", "bad-signature": "签名无效" };
// Names as people write them: DICOM "ZHANG^SAN=张三" shows 张三; local date and time.
const personName = (n) => String(n || "").split("=").pop().replaceAll("^", "");
const local = (iso) => { if (!iso) return ""; const d = new Date(iso); const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`; };

const el = ImagingShell.text;  // el(tag, text, class)

// Every call through the shell (token renewal, Chinese problem text); errors shown above the columns.
async function call(path, method = "GET", body) {
  try {
    const data = await api(path, { method, body });
    $("error").textContent = "";
    return data;
  } catch (e) {
    if ($("error")) $("error").textContent = e.text || e.message;
    throw e;
  }
}

async function loadWorklist() {
  const list = await call("/worklist" + ($("reported").checked ? "?include_reported=true" : ""));
  const body = $("worklist"); body.replaceChildren();
  for (const it of list.data) {
    const tr = document.createElement("tr");
    if (current && current.exam.accession_number === it.accession_number) tr.className = "sel";
    tr.append(el("td", it.accession_number, it.priority !== "routine" ? it.priority : ""),
      el("td", personName(it.patient_name) + " " + (SEX[it.sex] || "")),
      el("td", (it.modality || "") + " " + (it.exam_name || "")), el("td", (STATE[it.report_state] || it.report_state) + (it.critical ? " ⚠危急" : "")));
    // A row is opened with the mouse or the keyboard (Enter; ↑/↓ move between rows).
    tr.tabIndex = 0; tr.dataset.accession = it.accession_number;
    tr.onclick = () => openExam(it.accession_number, true).catch(() => {});
    body.append(tr);
  }
}

function content() {
  const fields = {};
  for (const input of document.querySelectorAll("[data-field]")) {
    const id = input.dataset.field, kind = input.dataset.kind;
    if (input.dataset.part === "unit") { if (fields[id] && input.value) fields[id].unit = input.value; continue; }
    if (input.dataset.part === "critical") { if (fields[id] && input.checked) fields[id].critical = true; continue; }
    if (input.value === "") continue;
    const v = (kind === "number" || kind === "measurement") ? Number(input.value) : input.value;
    fields[id] = { value: v };
    if (kind === "coded" && input.selectedOptions) {
      const o = input.selectedOptions[0]; fields[id] = { value: o.textContent, code: o.value, code_system: o.dataset.system, display: o.textContent };
    }
  }
  return { findings: $("findings").value, impression: $("impression").value, recommendation: $("recommendation").value,
    positive: $("positive").checked, fields };
}

function renderFields(template, values) {
  shownTemplate = template || {};
  const box = $("fields"); box.replaceChildren();
  for (const f of template.fields || []) {
    const row = el("div", "", "field"); row.append(el("span", f.label + (f.required ? " *" : "")));
    let input;
    if (f.type === "choice" || (f.type === "coded" && f.codes.length)) {
      input = document.createElement("select"); input.append(el("option", ""));
      const opts = f.type === "choice" ? f.options.map((o) => [o, o]) : f.codes.map((c) => [c.code, c.display || c.code, c.system]);
      for (const [value, label, system] of opts) { const o = el("option", label); o.value = value; if (system) o.dataset.system = system; input.append(o); }
    } else { input = document.createElement("input"); if (f.type === "number" || f.type === "measurement") input.type = "number"; input.step = "any"; }
    const v = values[f.id] || {};
    input.value = v.code || (v.value == null ? "" : v.value);
    input.dataset.field = f.id; input.dataset.kind = f.type; input.oninput = scheduleQc;
    row.append(input);
    if (f.type === "number" || f.type === "measurement") {
      const unit = document.createElement("input"); unit.placeholder = f.unit || "单位"; unit.value = v.unit || "";
      unit.dataset.field = f.id; unit.dataset.part = "unit"; unit.oninput = scheduleQc; row.append(unit);
    } else {
      const crit = document.createElement("input"); crit.type = "checkbox"; crit.title = "危急值"; crit.checked = !!v.critical;
      crit.dataset.field = f.id; crit.dataset.part = "critical"; row.append(crit);
    }
    box.append(row);
  }
}

function renderQc(issues) {
  const ul = $("qc"); ul.replaceChildren();
  for (const i of issues) ul.append(el("li", (i.severity === "blocker" ? "⛔ " : "⚠ ") + i.message, "qc-" + i.severity));
  if (!issues.length) ul.append(el("li", "无问题"));
}

function scheduleQc() {
  clearTimeout(qcTimer);
  qcTimer = setTimeout(async () => {
    if (!current) return;
    const r = await call("/qc", "POST", { accession_number: current.exam.accession_number, content: content(),
      template_id: current.report ? current.report.template_id : null }).catch(() => null);
    if (r) renderQc(r.issues);
  }, 400);
}

async function openExam(accession, toEditor) {
  current = await call("/exams/" + encodeURIComponent(accession));
  const { exam, report } = current;
  $("editor").hidden = false;
  $("title").textContent = exam.accession_number + " · " + personName(exam.patient_name) + " · " + (exam.exam_name || "");
  $("clinical").textContent = "临床诊断 " + (exam.clinical_diagnosis || "—") + " · 申请科室 " + (exam.ordering_department || "—") + (exam.laterality ? " · 侧别 " + exam.laterality : "");
  $("state").textContent = STATE[report ? report.state : "none"];
  $("version").textContent = report ? report.version : 0;
  const c = report ? report.content : {};
  for (const s of ["findings", "impression", "recommendation"]) { $(s).value = c[s] || ""; }
  $("positive").checked = !!c.positive;
  await loadTemplates(exam, report);
  renderFields(report ? report.template : await templateDefinition($("template").value), c.fields || {});
  renderQc(report ? report.qc : []);
  const box = $("actions"); box.replaceChildren();
  for (const a of current.allowed_actions) {
    if (["request-amendment", "approve-amendment", "reject-amendment"].includes(a)) continue;
    const b = el("button", ACTION[a] || a); b.type = "button"; b.onclick = () => step(a).catch(() => {}); box.append(b);
  }
  $("amend").hidden = !current.allowed_actions.some((a) => a.includes("amendment"));
  $("amend-request").hidden = !current.allowed_actions.includes("request-amendment");
  $("amend-approve").hidden = $("amend-reject").hidden = !current.allowed_actions.includes("approve-amendment");
  const priors = $("priors"); priors.replaceChildren();
  for (const p of current.priors) {
    const d = el("div", "", "prior");
    d.append(el("b", (p.completed_at || "").slice(0, 10) + " " + (p.modality || "") + " " + (p.exam_name || "")), el("div", p.impression || "（无报告）"));
    priors.append(d);
  }
  await loadVersions(); await loadPhrases(exam.modality); await loadWorklist();
  if (toEditor && !$("findings").disabled) $("findings").focus();
}

// The templates for the exam's modality; the report's own is chosen, else the most specific for the exam
// (modality and body part), as the service would choose on the first save.
async function loadTemplates(exam, report) {
  templates = (await call("/templates" + (exam.modality ? "?modality=" + encodeURIComponent(exam.modality) : ""))).data;
  const fit = (t) => (t.modality ? 1 : 0) + (t.body_part && t.body_part === exam.body_part ? 1 : 0) -
    (t.body_part && t.body_part !== exam.body_part ? 9 : 0);
  const chosen = report ? report.template_id : ([...templates].sort((a, b) => fit(b) - fit(a))[0] || {}).id;
  const sel = $("template");
  sel.replaceChildren(el("option", "（通用模板）"), ...templates.map((t) => Object.assign(el("option", t.name), { value: t.id })));
  sel.firstChild.value = "";
  sel.value = chosen || "";
  sel.disabled = !EDITABLE.includes(report ? report.state : "none");
}

async function templateDefinition(id) {
  if (!id) return {};
  return (await call("/templates/" + encodeURIComponent(id))).definition;
}

async function step(action) {
  const editable = ["save", "preliminary", "final", "sign-amended"].includes(action);
  const body = { note: $("note").value || null, expected_version: current.report ? current.report.version : null };
  if (editable) body.content = content();
  if (editable && $("template").value && !$("template").disabled) body.template_id = $("template").value;
  const r = await call("/exams/" + encodeURIComponent(current.exam.accession_number) + "/report/" + action, "POST", body);
  if (r.warnings && r.warnings.length) renderQc(r.warnings);
  $("note").value = "";
  await openExam(current.exam.accession_number);
  if (r.critical_raised && r.critical_raised.length) {  // in the page, not alert(): it must be seen, and stay readable
    $("critical-list").replaceChildren(...r.critical_raised.map((c) => el("li", c)));
    $("critical-dialog").showModal();
    $("critical-ok").focus();
  }
}

async function loadVersions() {
  const box = $("versions"); box.replaceChildren(); $("diff").textContent = "";
  if (!current.report) return;
  const v = await call("/reports/" + current.report.id + "/versions");
  for (const row of v.data) {
    const b = el("button", "v" + row.version + " " + (STATE[row.state] || row.state) + " · " + (row.saved_by_name || row.saved_by));
    b.type = "button";
    b.onclick = async () => {
      const d = await call("/reports/" + current.report.id + "/diff?from=" + Math.max(1, row.version - 1) + "&to=" + row.version);
      $("diff").textContent = d.by_step.map((s) => "v" + s.version + " " + s.by_name + " " + s.at.slice(0, 19) + "\n" +
        s.changes.map((c) => "  " + (c.section || c.field) + ": " + JSON.stringify(c.old) + " → " + JSON.stringify(c.new)).join("\n")).join("\n") || "无改动";
    };
    box.append(b);
  }
}

async function loadPhrases(modality) {
  const box = $("phrases"); box.replaceChildren();
  const list = await call("/phrases" + (modality ? "?modality=" + encodeURIComponent(modality) : ""));
  for (const p of list.data) {
    const b = el("button", p.label + (p.owner ? "" : " (科室)"), "phrase"); b.type = "button"; b.title = p.text;
    b.onclick = () => { const t = $(p.section || focused); t.value += (t.value && !t.value.endsWith("\n") ? "" : "") + p.text; scheduleQc(); };
    box.append(b);
  }
}

for (const s of ["findings", "impression", "recommendation"]) { $(s).onfocus = () => { focused = s; }; $(s).oninput = scheduleQc; }
$("amend-request").onclick = async () => {
  await call("/reports/" + current.report.id + "/amendments", "POST", { kind: $("amend-kind").value, reason: $("amend-reason").value });
  await openExam(current.exam.accession_number);
};
$("amend-approve").onclick = async () => { await call("/reports/" + current.report.id + "/amendments/review", "POST", { approve: true, note: $("note").value || null }); await openExam(current.exam.accession_number); };
$("amend-reject").onclick = async () => { await call("/reports/" + current.report.id + "/amendments/review", "POST", { approve: false, note: $("note").value || null }); await openExam(current.exam.accession_number); };
$("verify").onclick = async () => {
  if (!current.report) return;
  const v = await call("/reports/" + current.report.id + "/verify");
  $("verified").textContent = (v.valid ? "✔ " : "✘ ") + (VERIFIED[v.outcome] || v.outcome) +
    (v.signer_name ? " · " + v.signer_name + " " + local(v.signed_at) : "");
};
$("template").onchange = async () => {
  renderFields(await templateDefinition($("template").value), content().fields);
  scheduleQc();
};
$("critical-ok").onclick = () => $("critical-dialog").close();

// The preview is the report sheet as it prints, built from what is in the editor now.
function preview() {
  const { exam } = current, c = content(), r = current.report;
  const row = (...cells) => {  // label, value, label, value...
    const tr = document.createElement("tr");
    for (let i = 0; i < cells.length; i += 2) tr.append(el("th", cells[i]), el("td", cells[i + 1]));
    return tr;
  };
  $("sheet-head").replaceChildren(
    row("姓名", personName(exam.patient_name), "性别", SEX[exam.sex] || "", "检查号", exam.accession_number),
    row("检查项目", (exam.modality || "") + " " + (exam.exam_name || ""), "申请科室", exam.ordering_department || "",
      "检查时间", local(exam.completed_at)),
    row("临床诊断", exam.clinical_diagnosis || "", "病区", exam.ward || "", "报告状态", STATE[r ? r.state : "none"]));
  const body = $("sheet-body"); body.replaceChildren();
  const fields = shownTemplate.fields || [];
  const filled = fields.filter((f) => c.fields[f.id]).map((f) => f.label + "：" + c.fields[f.id].value + (c.fields[f.id].unit ? " " + c.fields[f.id].unit : ""));
  for (const [title, text] of [["结构化所见", filled.join("\n")], ["影像表现", c.findings], ["诊断意见", c.impression], ["建议", c.recommendation]]) {
    if (!text) continue;
    const sec = document.createElement("section"); sec.append(el("h3", title), el("p", text)); body.append(sec);
  }
  const signed = r && r.final_at ? "审核医师 " + (r.final_by || "") + " " + local(r.final_at)
    : r && r.preliminary_at ? "报告医师 " + (r.preliminary_by || "") + " " + local(r.preliminary_at) + "（未审核）" : "草稿，未签名";
  $("sheet-foot").textContent = signed + " · 打印时间 " + local(new Date().toISOString());
  $("preview").showModal();
}
$("preview-open").onclick = () => { if (current) preview(); };
$("preview-close").onclick = () => $("preview").close();
$("preview-print").onclick = () => { document.body.classList.add("printing"); window.print(); };
window.addEventListener("afterprint", () => document.body.classList.remove("printing"));
$("refresh").onclick = () => loadWorklist().catch(() => {});

// Keyboard, for radiologists who report all day: Alt+L the worklist (↑/↓ a row, Enter opens it, the cursor
// goes to the findings), Ctrl+S saves, Ctrl+Enter signs (final where allowed, else preliminary or the amended
// report), Alt+P the preview.
const SIGNING = ["final", "sign-amended", "preliminary"];
$("worklist").addEventListener("keydown", (ev) => {
  const row = ev.target.closest("tr");
  if (!row) return;
  if (ev.key === "Enter") { ev.preventDefault(); openExam(row.dataset.accession, true).catch(() => {}); }
  const next = ev.key === "ArrowDown" ? row.nextElementSibling : ev.key === "ArrowUp" ? row.previousElementSibling : null;
  if (next) { ev.preventDefault(); next.focus(); }
});
document.addEventListener("keydown", (ev) => {
  const key = ev.key.toLowerCase();
  if (ev.altKey && key === "l") {
    ev.preventDefault();
    const rows = $("worklist").rows;
    ($("worklist").querySelector("tr.sel") || rows[0] || $("refresh")).focus();
  } else if (ev.altKey && key === "p" && current) { ev.preventDefault(); preview(); }
  else if ((ev.ctrlKey || ev.metaKey) && current && (key === "s" || key === "enter")) {
    ev.preventDefault();
    const action = key === "s" ? "save" : SIGNING.find((a) => current.allowed_actions.includes(a));
    if (action && current.allowed_actions.includes(action)) step(action).catch(() => {});
  }
});
$("reported").onchange = () => loadWorklist().catch(() => {});
ImagingShell.start({ page: "reporting", title: "诊断报告", onReady: () => {
  loadWorklist().catch(() => {});
  setInterval(() => loadWorklist().catch(() => {}), 30000);
} });
