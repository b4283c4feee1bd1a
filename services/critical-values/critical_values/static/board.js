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
function render() {
  const body = $("items");
  if (!body) return;
  body.replaceChildren();
  for (const it of items) {
    const l = left(it);
    const tr = document.createElement("tr");
    tr.className = l.s <= 0 ? "overdue" : it.urgency;
    tr.append(cell(l.txt, "left"), cell(STATE[it.state] || it.state), cell(it.patient_name), cell(it.accession_number),
      cell(it.finding), cell(it.category), cell(it.modality), cell(it.recipient), cell(it.department || it.ward),
      cell(it.escalation_level), cell(it.open_phone_tasks));
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
