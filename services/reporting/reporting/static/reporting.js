// The radiologists' page: worklist, editor with template fields and phrases, priors, QC, sign and amend.
"use strict";
const api = ImagingShell.api("/api/reporting");
const $ = (id) => document.getElementById(id);
const STATE = { none: "未写", draft: "草稿", preliminary: "初诊", consultation: "会诊", final: "已审核",
  "amendment-requested": "申请修改", amending: "修改中", withdrawn: "已收回", cancelled: "已取消" };
const ACTION = { save: "保存 Save", preliminary: "初诊签名 Sign preliminary", final: "审核签发 Sign final",
  "return": "退回 Return", consult: "提交会诊 Consult", "close-consultation": "结束会诊 Close consultation",
  "sign-amended": "修改签发 Sign amended", withdraw: "收回 Withdraw", cancel: "取消 Cancel" };
let current = null, focused = "findings", qcTimer = null;

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
      el("td", (it.patient_name || "").replaceAll("^", " ") + " " + (it.sex || "")),
      el("td", (it.modality || "") + " " + (it.exam_name || "")), el("td", (STATE[it.report_state] || it.report_state) + (it.critical ? " ⚠危急" : "")));
    tr.onclick = () => openExam(it.accession_number).catch(() => {});
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
      const unit = document.createElement("input"); unit.placeholder = f.unit || "unit"; unit.value = v.unit || "";
      unit.dataset.field = f.id; unit.dataset.part = "unit"; unit.oninput = scheduleQc; row.append(unit);
    } else {
      const crit = document.createElement("input"); crit.type = "checkbox"; crit.title = "危急值 critical"; crit.checked = !!v.critical;
      crit.dataset.field = f.id; crit.dataset.part = "critical"; row.append(crit);
    }
    box.append(row);
  }
}

function renderQc(issues) {
  const ul = $("qc"); ul.replaceChildren();
  for (const i of issues) ul.append(el("li", (i.severity === "blocker" ? "⛔ " : "⚠ ") + i.message, "qc-" + i.severity));
  if (!issues.length) ul.append(el("li", "无问题 No issues"));
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

async function openExam(accession) {
  current = await call("/exams/" + encodeURIComponent(accession));
  const { exam, report } = current;
  $("editor").hidden = false;
  $("title").textContent = exam.accession_number + " · " + (exam.patient_name || "").replaceAll("^", " ") + " · " + (exam.exam_name || "");
  $("clinical").textContent = "临床诊断 " + (exam.clinical_diagnosis || "—") + " · 申请科室 " + (exam.ordering_department || "—") + (exam.laterality ? " · 侧别 " + exam.laterality : "");
  $("state").textContent = STATE[report ? report.state : "none"];
  $("version").textContent = report ? report.version : 0;
  const c = report ? report.content : {};
  for (const s of ["findings", "impression", "recommendation"]) { $(s).value = c[s] || ""; }
  $("positive").checked = !!c.positive;
  renderFields(report ? report.template : {}, c.fields || {});
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
}

async function step(action) {
  const editable = ["save", "preliminary", "final", "sign-amended"].includes(action);
  const body = { note: $("note").value || null, expected_version: current.report ? current.report.version : null };
  if (editable) body.content = content();
  const r = await call("/exams/" + encodeURIComponent(current.exam.accession_number) + "/report/" + action, "POST", body);
  if (r.warnings && r.warnings.length) renderQc(r.warnings);
  if (r.critical_raised && r.critical_raised.length) alert("危急值已上报 Critical finding raised: " + r.critical_raised.join(", "));
  $("note").value = "";
  await openExam(current.exam.accession_number);
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
        s.changes.map((c) => "  " + (c.section || c.field) + ": " + JSON.stringify(c.old) + " → " + JSON.stringify(c.new)).join("\n")).join("\n") || "无改动 no change";
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
  $("verified").textContent = (v.valid ? "✔ " : "✘ ") + v.outcome + (v.signer_name ? " · " + v.signer_name + " " + v.signed_at : "");
};
$("refresh").onclick = () => loadWorklist().catch(() => {});
$("reported").onchange = () => loadWorklist().catch(() => {});
ImagingShell.start({ page: "reporting", title: "诊断报告", onReady: () => {
  loadWorklist().catch(() => {});
  setInterval(() => loadWorklist().catch(() => {}), 30000);
} });
