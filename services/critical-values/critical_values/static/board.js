// The live critical-value board: time left per open value, coloured by urgency; QC statistics.
"use strict";
const api = ImagingShell.api("/api/critical-values");
const $ = (id) => document.getElementById(id);
const STATE = { "awaiting-confirmation": "待上级确认", notifying: "通知中", notified: "已送达" };
let items = [], skew = 0;

async function call(path, raw) {
  try {
    return await api(path, { raw });
  } catch (e) {
    if ($("error") && e.status !== 403) $("error").textContent = e.text || e.message;
    throw e;
  }
}
const cell = (value, cls) => ImagingShell.text("td", value, cls);
function left(it) {
  const s = Math.round((Date.parse(it.due_at) - (Date.now() + skew)) / 1000);
  const a = Math.abs(s), txt = Math.floor(a / 60) + ":" + String(a % 60).padStart(2, "0");
  return { s, txt: s < 0 ? "超时 -" + txt : txt };
}
// ---- actions on a row: what the signed-in user's roles allow (the API checks again) ----------------
const has = (...roles) => !!ImagingShell.me && ImagingShell.me.roles.some((r) => roles.includes(r));
const el = ImagingShell.el;
const OUTCOMES = { reached: "已接通并告知", "no-answer": "无人接听", "wrong-number": "号码错误", other: "其他" };
function button(label, onclick) {
  const b = el("button", { type: "button", class: "secondary", text: label });
  b.onclick = () => onclick().catch(() => {});
  return b;
}
function actions(it) {
  const td = el("td", { class: "ops" });
  const id = encodeURIComponent(it.critical_id);
  if (it.state === "awaiting-confirmation" && has("radiologist", "senior-radiologist"))
    td.append(button("确认", () => post(`/critical-values/${id}/confirm`, {})));
  if (it.state === "awaiting-confirmation" && has("senior-radiologist"))
    td.append(button("不予确认", () => ask(it, "不予确认", [["reason", "原因", "textarea", true]],
      (v) => post(`/critical-values/${id}/reject`, v))));
  if (it.open_phone_tasks > 0 && has("radiologist", "senior-radiologist", "nurse", "admin"))
    td.append(button("电话结果", () => phoneOutcome(it)));
  if (has("radiologist", "senior-radiologist"))
    td.append(button("仅记录关闭", () => ask(it, "仅记录并关闭", [["note", "记录（如：已当面告知某医生）", "textarea", true]],
      (v) => post(`/critical-values/${id}/document`, v))));
  if (has("clinician")) td.append(el("a", { href: `/ui/critical-values/ack/${id}`, text: "确认收到" }));
  return td;
}
async function post(path, body) {
  await api(path, { method: "POST", body });
  await load();
}
async function phoneOutcome(it) {
  const tasks = (await call("/phone-tasks")).data.filter((t) => t.critical_id === it.critical_id);
  if (!tasks.length) { await load(); return; }
  await ask(it, "电话通知结果", [["outcome", "结果", OUTCOMES, true], ["called_person", "接听人", "input"],
    ["action_taken", "临床处理措施", "textarea"], ["notes", "备注", "textarea"]],
  (v) => post(`/phone-tasks/${tasks[0].task_id}/outcome`, v));
}
// The dialog: fields [name, label, "input" | "textarea" | {value: label}, required]; `send(values)` on submit,
// the dialog stays open with the error when the service refuses.
function ask(it, title, fields, send) {
  const dlg = $("act");
  $("act-title").textContent = title;
  $("act-what").textContent = `${it.accession_number} · ${it.patient_name} · ${it.finding}`;
  $("act-error").textContent = "";
  $("act-fields").replaceChildren(...fields.map(([name, label, kind, required]) => {
    const input = typeof kind === "object"
      ? el("select", { name }, ...Object.entries(kind).map(([v, t]) => el("option", { value: v, text: t })))
      : el(kind, { name, required: required ? "" : null });
    return el("label", { text: label }, input);
  }));
  const form = $("act-form");
  form.onsubmit = async (e) => {
    if (e.submitter && e.submitter.value === "cancel") return;
    e.preventDefault();
    const values = Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ""));
    try { await send(values); dlg.close(); } catch (err) { $("act-error").textContent = err.text || err.message; }
  };
  dlg.showModal();
  dlg.querySelector("[name]").focus();
  return Promise.resolve();
}

function render() {
  const body = $("items");
  if (!body || $("act").open) return;  // not while a dialog is open on a row
  body.replaceChildren();
  for (const it of items) {
    const l = left(it);
    const tr = document.createElement("tr");
    tr.className = l.s <= 0 ? "overdue" : it.urgency;
    tr.append(cell(l.txt, "left"), cell(STATE[it.state] || it.state), cell(it.patient_name), cell(it.accession_number),
      cell(it.finding), cell(it.category), cell(it.modality), cell(it.recipient), cell(it.department || it.ward),
      cell(it.escalation_level), cell(it.open_phone_tasks), actions(it));
    body.append(tr);
  }
  $("count").textContent = items.length + " 项未闭环";
  $("now").textContent = new Date().toLocaleTimeString("zh-CN");
}
async function load() {
  const b = await call("/board");
  skew = Date.parse(b.now) - Date.now();
  items = b.data; $("board").hidden = false; $("error").textContent = "";
  render();
}
async function loadStats() {
  const g = $("group").value;
  $("csv").onclick = async (e) => {
    e.preventDefault();
    const r = await call("/stats?format=csv&group_by=" + g, true);
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a"); a.href = url; a.download = "critical-values-" + g + ".csv"; a.click();
  };
  try {
    const s = await call("/stats?group_by=" + g);
    $("stats").hidden = false;
    const body = $("statrows"); body.replaceChildren();
    for (const r of s.data) {
      const tr = document.createElement("tr");
      tr.append(cell(r.key), cell(r.total), cell(r.rate_within_window == null ? "-" : (r.rate_within_window * 100).toFixed(1) + "%"),
        cell(r.median_ack_seconds), cell(r.escalated_values));
      body.append(tr);
    }
  } catch (e) { /* not in the QC group: the board alone */ }
}
$("group").onchange = () => loadStats();
ImagingShell.start({ page: "critical-values", title: "危急值看板", onReady: () => {
  load().then(loadStats).catch(() => {});
  setInterval(render, 1000);
  setInterval(() => load().catch(() => {}), 5000);
  setInterval(() => loadStats(), 60000);
} });
