// The department head's dashboard: figures from /api/dashboard/stats/<metric> drawn with Chart.js,
// the modality status board, CSV/Excel export of the chosen figure.
"use strict";
const api = ImagingShell.api("/api/dashboard");
const $ = (id) => document.getElementById(id);
const text = ImagingShell.text;
const STATE = { online: "在线", idle: "空闲", in_exam: "检查中", unreachable: "离线", unknown: "未知" };
const STEP = { ordered_to_booked: "申请→预约", booked_to_arrived: "预约→到检", arrived_to_started: "到检→开始",
  started_to_completed: "检查", completed_to_preliminary: "完成→初诊", preliminary_to_final: "初诊→审核",
  final_to_delivered: "审核→发放", ordered_to_final: "申请→报告" };
const charts = {};

function localDate(d) { return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 10); }
function query(extra) {
  const p = new URLSearchParams({ start: $("start").value + "T00:00:00+08:00", end: $("end").value + "T23:59:59+08:00",
    period: $("period").value, group_by: $("group").value, ...(extra || {}) });
  if ($("modality").value.trim()) p.set("modality", $("modality").value.trim().toUpperCase());
  return p;
}
async function call(path, init) {
  try { const r = await api(path, init); $("error").textContent = ""; return r; }
  catch (e) { $("error").textContent = e.text || e.message; throw e; }
}
function draw(id, type, labels, datasets) {
  if (charts[id]) charts[id].destroy();
  charts[id] = new Chart($(id), { type, data: { labels, datasets },
    options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } } });
}
function series(rows, value) {
  // One line/bar per group key, over the periods.
  const periods = [...new Set(rows.map((r) => r.period))], keys = [...new Set(rows.map((r) => r.key))];
  return { periods, datasets: keys.map((k) => ({ label: k === "all" ? "全部" : k,
    data: periods.map((p) => { const r = rows.find((x) => x.period === p && x.key === k); return r ? value(r) : null; }) })) };
}
const pct = (v) => (v == null ? "-" : (v * 100).toFixed(1) + "%");

async function load() {
  const [vol, turn, rep, util] = await Promise.all([
    call("/stats/volumes?" + query()), call("/stats/turnaround?" + query({ period: "all", group_by: "all" })),
    call("/stats/reports?" + query({ period: "all" })), call("/stats/utilisation?" + query({ group_by: "device" }))]);
  const v = series(vol.data, (r) => r.exams);
  draw("chart-volumes", "bar", v.periods, v.datasets);
  const t = turn.data[0] || {};
  const steps = Object.keys(STEP);
  draw("chart-turnaround", "bar", steps.map((s) => STEP[s]), [
    { label: "P50", data: steps.map((s) => t[s + "_p50_s"] == null ? null : t[s + "_p50_s"] / 60) },
    { label: "P90", data: steps.map((s) => t[s + "_p90_s"] == null ? null : t[s + "_p90_s"] / 60) }]);
  draw("chart-reports", "bar", rep.data.map((r) => (r.key === "all" ? "全部" : r.key)), [
    { label: "阳性率", data: rep.data.map((r) => r.positive_rate) },
    { label: "初终审符合率", data: rep.data.map((r) => r.agreement_rate) },
    { label: "修改率", data: rep.data.map((r) => r.amendment_rate) }]);
  const u = series(util.data, (r) => r.utilisation);
  draw("chart-utilisation", "line", u.periods, u.datasets);
  await loadSummary();
  await loadDevices();
}
async function loadSummary() {
  const p = query({ period: "all" });
  const [vol, wait, rep, crit] = await Promise.all(["volumes", "waiting", "reports", "critical"].map(
    (m) => call("/stats/" + m + "?" + p)));
  const keys = [...new Set([vol, wait, rep, crit].flatMap((f) => f.data.map((r) => r.key)))].sort();
  const find = (f, k) => f.data.find((r) => r.key === k) || {};
  const body = $("summary"); body.replaceChildren();
  for (const k of keys) {
    const w = find(wait, k);
    const tr = document.createElement("tr");
    tr.append(text("td", k === "all" ? "全部" : k), text("td", find(vol, k).exams || 0), text("td", pct(w.no_show_rate)),
      text("td", w.wait_p50_s == null ? "-" : (w.wait_p50_s / 60).toFixed(1)), text("td", pct(find(rep, k).positive_rate)),
      text("td", pct(find(crit, k).rate_within_window)));
    body.append(tr);
  }
}
async function loadDevices() {
  const b = await call("/devices");
  $("now").textContent = new Date(b.now).toLocaleString("zh-CN");
  const body = $("device-rows"); body.replaceChildren();
  for (const d of b.data) {
    const tr = document.createElement("tr"); tr.dataset.device = d.device_id;
    tr.append(text("td", d.name + " (" + d.ae_title + ")"), text("td", d.kind === "printer" ? "打印机" : (d.modality || "设备")),
      text("td", STATE[d.state] || d.state, d.state), text("td", d.last_seen_at ? new Date(d.last_seen_at).toLocaleString("zh-CN") : "-"),
      text("td", d.today_exams), text("td", d.maintenance ? "维护中：" + d.maintenance.note : ""));
    body.append(tr);
  }
}
async function exportAs(fmt) {
  const metric = $("metric").value;
  const r = await call("/stats/" + metric + "?" + query({ format: fmt }), { raw: true });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await r.blob()); a.download = metric + "." + fmt; a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
$("filters").onsubmit = (e) => { e.preventDefault(); load().catch(() => {}); };
$("csv").onclick = () => exportAs("csv").catch(() => {});
$("xlsx").onclick = () => exportAs("xlsx").catch(() => {});
ImagingShell.start({ page: "dashboard", title: "科室运营看板", onReady: () => {
  const today = new Date();
  $("end").value = localDate(today);
  $("start").value = localDate(new Date(today.getFullYear() - 1, today.getMonth(), today.getDate() + 1));
  load().catch(() => {});
  setInterval(() => loadDevices().catch(() => {}), 15000);
} });
