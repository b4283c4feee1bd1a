// Quality control: the exams drawn for review, a first or second reading, statistics per person and month.
"use strict";
const api = ImagingShell.api("/api/dashboard/qc");
const $ = (id) => document.getElementById(id);
const text = ImagingShell.text;
const REASONS = {
  image: ["体位不正", "伪影", "曝光不当", "扫描范围不全", "标记缺失"],
  request: ["临床资料不全", "检查项目不当", "诊断信息缺失", "申请医生未签名"],
  report: ["描述不全", "诊断不当", "术语不规范", "漏诊", "格式错误"],
};
let chosen = null;

async function call(path, init) {
  try { const r = await api(path, init); $("error").textContent = ""; return r; }
  catch (e) { $("error").textContent = e.text || e.message; throw e; }
}
function showForm(kind) {
  const report = kind === "report";
  $("grade-row").hidden = report; $("score-row").hidden = !report;
  $("reasons").replaceChildren(...REASONS[kind].map((r) => {
    const label = ImagingShell.el("label", {}, ImagingShell.el("input", { type: "checkbox", value: r }), " " + r);
    return label;
  }));
}
async function loadItems() {
  const kind = $("kind").value;
  const items = await call("/" + kind + "/items");
  const body = $("items"); body.replaceChildren();
  for (const it of items.data) {
    const tr = document.createElement("tr"); tr.dataset.accession = it.accession_number;
    const pick = text("button", "评阅"); pick.type = "button";
    pick.onclick = () => { chosen = it.accession_number; $("chosen").textContent = chosen; $("review").hidden = false;
      $("saved").textContent = ""; body.querySelectorAll("tr").forEach((r) => r.classList.toggle("chosen", r === tr)); };
    const td = document.createElement("td"); td.append(pick);
    tr.append(text("td", it.accession_number), text("td", it.modality || ""), text("td", it.person || ""),
      text("td", new Date(it.drawn_at).toLocaleString("zh-CN")),
      text("td", it.reviews.map((r) => r.reviewer + "：" + (r.grade || r.score)).join("；")), td);
    body.append(tr);
  }
}
async function loadStats() {
  const kind = $("kind").value;
  const lead = ImagingShell.me.roles.some((r) => r === "senior-radiologist" || r === "admin");
  $("stats-section").hidden = !lead;
  if (!lead) return;  // the statistics are the QC lead's
  const s = await call("/" + kind + "/stats");
  const body = $("stats"); body.replaceChildren();
  for (const r of s.data) {
    const tr = document.createElement("tr");
    tr.append(...[r.month, r.person, r.reviews, r.grade_a, r.grade_b, r.grade_c, r.grade_d,
      r.grade_a_rate == null ? "-" : (r.grade_a_rate * 100).toFixed(1) + "%", r.mean_score == null ? "-" : r.mean_score,
      r.second_reads, r.agreed].map((v) => text("td", v)));
    body.append(tr);
  }
}
async function load() { showForm($("kind").value); $("review").hidden = true; await loadItems(); await loadStats(); }
$("review").onsubmit = async (e) => {
  e.preventDefault();
  const kind = $("kind").value;
  const body = { reasons: [...$("reasons").querySelectorAll("input:checked")].map((i) => i.value), note: $("note").value };
  if (kind === "report") body.score = Number($("score").value);
  else body.grade = document.querySelector("input[name=grade]:checked").value;
  await call("/" + kind + "/items/" + encodeURIComponent(chosen) + "/reviews", { method: "POST", body });
  $("saved").textContent = "已提交";
  await loadItems(); await loadStats();
};
$("kind").onchange = () => load().catch(() => {});
$("refresh").onclick = () => load().catch(() => {});
ImagingShell.start({ page: "qc", title: "质控", onReady: () => load().catch(() => {}) });
