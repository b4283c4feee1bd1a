// Front desk (sign-in, navigation bar, token renewal and logout: the shared shell): find, register with identity check and same-name panel,
// possible duplicates, orders with special conditions, printable application form.
// Keyboard: F2 find, F3 register, F4 duplicates, F6 order, Ctrl+Enter save, Esc clear, arrows in lists.
"use strict";

const API = "/api/registration";
const state = { patient: null, results: [], selected: -1, linkTo: null };
const call = ImagingShell.api(API);
const $ = (sel) => document.querySelector(sel);
const SEX = { M: "男", F: "女", O: "其他", U: "未知" };
const BAND = { link: "同一人", review: "疑似", new: "不同", "same-name": "同名" };
const ITEMS = [
  ["CT-HEAD", "头颅CT平扫", "CT", "HEAD"], ["CT-CHEST", "胸部CT平扫", "CT", "CHEST"],
  ["CT-ABD-C", "腹部CT增强", "CT", "ABDOMEN", true], ["MR-HEAD", "头颅MR平扫", "MR", "HEAD"],
  ["MR-LSPINE", "腰椎MR平扫", "MR", "LSPINE"], ["DX-CHEST", "胸部正位片", "DX", "CHEST"],
  ["US-ABD", "腹部彩超", "US", "ABDOMEN"], ["MG-BREAST", "乳腺钼靶", "MG", "BREAST"],
];

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function toast(text, kind = "ok") {
  const t = $("#toast");
  if (!t) return;  // the session ended: the page is already empty
  t.textContent = text;
  t.className = kind;
}

// Every call through the shell: bearer token, silent renewal, Chinese problem text in `e.message`.
function api(path, options = {}) {
  return call(path, options);
}

async function enter() {
  showTab("find");
  refreshReviewCount();
}

// ---- tabs and keys -------------------------------------------------------------------------
function showTab(name) {
  document.querySelectorAll(".tab-panel").forEach((p) => { p.hidden = p.id !== `tab-${name}`; });
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  $("#print-form").hidden = true;
  const focus = { find: "#search", register: "#reg-name", order: "#ord-class", reviews: null }[name];
  if (focus) $(focus).focus();
  if (name === "reviews") { loadPending(); loadReviews(); }
  if (name === "order") showOrderPatient();
}
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
document.addEventListener("keydown", (ev) => {
  if ($("#main-view").hidden) return;
  const keys = { F2: "find", F3: "register", F4: "reviews", F6: "order" };
  if (keys[ev.key]) { ev.preventDefault(); showTab(keys[ev.key]); }
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    const form = $("#tab-register").hidden ? ($("#tab-order").hidden ? null : $("#order-form")) : $("#register-form");
    if (form) { ev.preventDefault(); form.requestSubmit(); }
  }
  if (ev.key === "Escape" && !$("#tab-register").hidden) { $("#register-form").reset(); clearSameName(); $("#reg-name").focus(); }
});

// ---- find ----------------------------------------------------------------------------------
$("#search").addEventListener("keydown", async (ev) => {
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    ev.preventDefault();
    const n = state.results.length;
    if (!n) return;
    state.selected = (state.selected + (ev.key === "ArrowDown" ? 1 : n - 1)) % n;
    markSelected();
    return;
  }
  if (ev.key !== "Enter") return;
  if (state.selected >= 0 && state.results[state.selected]) return openPatient(state.results[state.selected].empi_id);
  const q = ev.target.value.trim();
  if (!q) return;
  try {
    // POST: an ID number typed here must not end up in a URL (proxy and gateway logs).
    const res = await api("/patients/search", { method: "POST", body: JSON.stringify({ q }) });
    state.results = res.data; state.selected = res.data.length ? 0 : -1;
    renderResults();
    if (!res.data.length) toast("未找到病人，可按 F3 登记", "warn");
  } catch (e) { toast(e.message, "error"); }
});
$("#search").addEventListener("input", () => { state.selected = -1; markSelected(); });

function renderResults() {
  $("#search-results tbody").innerHTML = state.results.map((p, i) => `
    <tr data-i="${i}" tabindex="-1"><td>${esc(p.name)}</td><td>${SEX[p.sex] || ""}</td><td>${p.age ?? ""}</td>
    <td>${esc(p.birth_date || "")}</td><td>${esc(p.id_number_masked || "")}</td><td>${esc(p.phone_masked || "")}</td>
    <td>${esc(p.patient_id)}</td></tr>`).join("");
  document.querySelectorAll("#search-results tbody tr").forEach((tr) =>
    tr.addEventListener("click", () => openPatient(state.results[+tr.dataset.i].empi_id)));
  markSelected();
}

function markSelected() {
  document.querySelectorAll("#search-results tbody tr").forEach((tr) =>
    tr.classList.toggle("selected", +tr.dataset.i === state.selected));
}

function specialTags(s) {
  if (!s) return "";
  return [s.critical && '<span class="tag crit">危重</span>', s.mdr && '<span class="tag mdr">多重耐药菌</span>',
          s.infectious && '<span class="tag inf">传染病</span>'].filter(Boolean).join(" ");
}

async function openPatient(empiId) {
  try {
    const p = await api(`/patients/${encodeURIComponent(empiId)}`);
    const orders = await api(`/orders?empi_id=${encodeURIComponent(p.empi_id)}`);
    state.patient = p;
    const card = $("#patient-card");
    card.hidden = false;
    card.innerHTML = `<h2>${esc(p.name)} <small>${esc(p.name_latin || "")}</small> ${p.verified ? '<span class="tag ok">已核验</span>' : ""}</h2>
      <p>${SEX[p.sex] || ""} · ${p.age ?? "?"}岁 · ${esc(p.birth_date || "")} · 证件 ${esc(p.id_number_masked || "无")} ·
      电话 ${esc(p.phone_masked || "无")} · 病人ID <b id="card-patient-id">${esc(p.patient_id)}</b></p>
      <button id="card-order">开申请单 <kbd>F6</kbd></button>
      <span class="verify"><input id="card-doc" placeholder="刷卡/输入证件号核验" maxlength="18">
        <button id="card-verify" class="secondary">核验证件</button></span>
      <table class="list"><thead><tr><th>检查号</th><th>项目</th><th>科室</th><th>特殊情况</th><th>时间</th><th>状态</th></tr></thead><tbody>
      ${orders.data.map((o) => `<tr class="${o.special.critical ? "row-crit" : o.special.infectious ? "row-inf" : o.special.mdr ? "row-mdr" : ""}">
        <td>${esc(o.accession_number)}</td><td>${esc(o.items.map((i) => i.name).join("、"))}</td>
        <td>${esc(o.ordering_department || "")}</td><td>${specialTags(o.special)}</td>
        <td>${esc(new Date(o.ordered_at).toLocaleString("zh-CN"))}</td>
        <td>${o.status === "cancelled" ? '<span class="tag">已取消</span>'
          : `<button class="secondary order-change" data-accession="${esc(o.accession_number)}" data-priority="${esc(o.priority)}"
               data-department="${esc(o.ordering_department || "")}">更改</button>
             <button class="secondary order-cancel" data-accession="${esc(o.accession_number)}">取消检查</button>`}</td></tr>`).join("")}</tbody></table>`;
    $("#card-order").addEventListener("click", () => showTab("order"));
    // Cancelling reaches the worklist, the appointment, the queue and the films (order.cancelled): ask why.
    card.querySelectorAll(".order-cancel").forEach((b) => b.addEventListener("click", async () => {
      const reason = (window.prompt(`取消检查 ${b.dataset.accession}：请填写原因`) || "").trim();
      if (!reason) return;
      try {
        await api(`/orders/${encodeURIComponent(b.dataset.accession)}/cancel`, { method: "POST", body: JSON.stringify({ reason }) });
        toast(`检查 ${b.dataset.accession} 已取消`);
        openPatient(p.empi_id);
      } catch (e) { toast(e.message, "error"); }
    }));
    // A change reaches the worklist, the appointment and the queue too (order.changed): ask why.
    card.querySelectorAll(".order-change").forEach((b) => b.addEventListener("click", () => changeOrder(b, p)));
    const verify = async () => {
      const number = $("#card-doc").value.trim();
      if (!number) return;
      try {
        const v = await api(`/patients/${encodeURIComponent(p.empi_id)}/verifications`, { method: "POST",
          body: JSON.stringify({ method: "document-seen", document_type: "resident-id", document_number: number }) });
        toast(v.document_matches ? "证件与档案一致，已记录核验" : "证件与档案不一致！请核对身份", v.document_matches ? "ok" : "error");
        $("#card-doc").value = "";
      } catch (e) { toast(e.message, "error"); }
    };
    $("#card-verify").addEventListener("click", verify);
    $("#card-doc").addEventListener("keydown", (ev) => { if (ev.key === "Enter") verify(); });
  } catch (e) { toast(e.message, "error"); }
}

function changeOrder(button, patient) {
  const dlg = document.createElement("dialog");
  dlg.className = "order-change-dialog";
  dlg.innerHTML = `<form method="dialog"><h3>更改检查 ${esc(button.dataset.accession)}</h3>
    <label>优先级 <select name="priority"><option value="routine">常规</option><option value="urgent">加急</option>
      <option value="stat">急诊</option></select></label>
    <label>申请科室 <input name="ordering_department" maxlength="60"></label>
    <label>预约检查时间 <input name="requested_at" type="datetime-local"></label>
    <label>更改原因 <input name="reason" required maxlength="200"></label>
    <menu><button value="save">保存更改</button> <button value="cancel" formnovalidate class="secondary">放弃</button></menu></form>`;
  document.body.appendChild(dlg);
  const f = dlg.querySelector("form");
  f.priority.value = button.dataset.priority;
  f.ordering_department.value = button.dataset.department;
  dlg.addEventListener("close", async () => {
    dlg.remove();
    if (dlg.returnValue !== "save") return;
    const body = { reason: f.reason.value.trim(), priority: f.priority.value,
                   ordering_department: f.ordering_department.value.trim() || null };
    if (f.requested_at.value) body.requested_at = new Date(f.requested_at.value).toISOString();
    try {
      const o = await api(`/orders/${encodeURIComponent(button.dataset.accession)}/change`, { method: "POST", body: JSON.stringify(body) });
      toast(o.changed.length ? `检查 ${button.dataset.accession} 已更改` : "没有需要更改的内容");
      openPatient(patient.empi_id);
    } catch (e) { toast(e.message, "error"); }
  });
  dlg.showModal();
}

// ---- register ------------------------------------------------------------------------------
const W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
function residentId(value) {
  const v = value.trim().toUpperCase();
  if (!/^\d{17}[\dX]$/.test(v)) return null;
  const sum = W.reduce((s, w, i) => s + w * +v[i], 0);
  if ("10X98765432"[sum % 11] !== v[17]) return { valid: false };
  return { valid: true, birth: `${v.slice(6, 10)}-${v.slice(10, 12)}-${v.slice(12, 14)}`, sex: +v[16] % 2 ? "M" : "F" };
}

$("#reg-id").addEventListener("input", (ev) => {
  const hint = $("#reg-id-hint");
  if ($("#reg-id-type").value !== "resident-id" || ev.target.value.length < 18) { hint.textContent = ""; return; }
  const r = residentId(ev.target.value);
  if (!r || !r.valid) { hint.textContent = "校验位不符，请核对号码"; hint.className = "error"; return; }
  hint.textContent = "号码有效"; hint.className = "ok";
  $("#reg-birth").value = r.birth; $("#reg-sex").value = r.sex;
  checkSameName();
});
["#reg-name", "#reg-birth", "#reg-phone"].forEach((s) => $(s).addEventListener("change", checkSameName));

function draft() {
  const f = new FormData($("#register-form"));
  const body = { name: f.get("name").trim(), sex: f.get("sex") || null, birth_date: f.get("birth_date") || null,
    phone: f.get("phone") || null, address: f.get("address") || null, verified: $("#reg-verified").checked,
    identifiers: f.get("id_number") ? [{ type: f.get("id_type"), value: f.get("id_number").trim() }] : [] };
  return body;
}

function clearSameName() { state.linkTo = null; $("#same-name").hidden = true; $("#reg-force-new").checked = false; }

async function checkSameName() {
  const body = draft();
  if (!body.name) return;
  try {
    const res = await api("/patients/match", { method: "POST", body: JSON.stringify(body) });
    const panel = $("#same-name");
    panel.hidden = res.count === 0;
    panel.querySelector("tbody").innerHTML = res.data.map((c, i) => `
      <tr class="band-${c.band}"><td>${esc(c.patient.name)}</td><td>${SEX[c.patient.sex] || ""}</td><td>${c.patient.age ?? ""}</td>
      <td>${esc(c.patient.id_number_masked || "无")}</td><td>${esc(c.patient.phone_masked || "")}</td>
      <td>${BAND[c.band] || c.band}${c.reason ? `<br><small>${esc(c.reason)}</small>` : ""}</td>
      <td><button type="button" class="secondary same-person" data-empi="${esc(c.patient.empi_id)}">是此人 (${i + 1})</button></td></tr>`).join("");
    panel.querySelectorAll(".same-person").forEach((b) => b.addEventListener("click", () => {
      state.linkTo = b.dataset.empi;
      panel.querySelectorAll("tr").forEach((tr) => tr.classList.remove("selected"));
      b.closest("tr").classList.add("selected");
      toast("将归入所选病人档案，按 Ctrl+Enter 保存");
    }));
  } catch (e) { toast(e.message, "error"); }
}

$("#register-form").addEventListener("reset", clearSameName);
$("#register-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = { ...draft(), link_to: state.linkTo, force_new: $("#reg-force-new").checked };
  try {
    const res = await api("/patients", { method: "POST", body: JSON.stringify(body) });
    const p = res.patient;
    toast(res.outcome === "created" ? `已登记新病人 ${p.name}，病人ID ${p.patient_id}` +
      (res.review_ids.length ? `（${res.review_ids.length} 条疑似重复待审核）` : "")
      : `已归入现有档案 ${p.name}，病人ID ${p.patient_id}`);
    // Linked to a patient whose name, birth date or sex it would change: nothing changed yet; ask.
    if (res.pending) await confirmPending(res.pending, p);
    ev.target.reset();
    state.patient = p;
    refreshReviewCount();
    await openPatient(p.empi_id);
    showTab("order");
  } catch (e) { toast(e.message, "error"); }
});

// ---- changes of who a patient is -------------------------------------------------------------
const FIELD = { name: "姓名", birth_date: "出生日期", sex: "性别" };
function changeText(changes) {
  const show = (k, v) => esc((k === "sex" ? SEX[v] : v) || "无");
  return Object.entries(changes).map(([k, [was, now]]) =>
    `${FIELD[k] || k}：<b>${show(k, was)}</b> → <b>${show(k, now)}</b>`).join("<br>");
}

async function decidePending(id, decision) {
  await api(`/pending-changes/${encodeURIComponent(id)}/${decision}`, { method: "POST" });
  toast(decision === "confirm" ? "已确认，资料已更改" : "已驳回，保持原资料");
}

function confirmPending(pending, patient) {
  return new Promise((resolve) => {
    const dlg = document.createElement("dialog");
    dlg.className = "pending-change-dialog";
    dlg.innerHTML = `<form method="dialog"><h3>病人资料将被更改</h3>
      <p>病人ID ${esc(patient.patient_id)} 的档案与本次登记不一致：</p><p class="changes">${changeText(pending.changes)}</p>
      <p>请核对证件后确认。</p>
      <menu><button value="confirm">确认更改</button> <button value="reject" class="secondary">保持原资料</button>
        <button value="later" class="secondary">稍后处理</button></menu></form>`;
    document.body.appendChild(dlg);
    dlg.addEventListener("close", async () => {
      dlg.remove();
      try {
        if (dlg.returnValue === "confirm" || dlg.returnValue === "reject") await decidePending(pending.id, dlg.returnValue);
        else toast("资料变更留在“待审核”中");
      } catch (e) { toast(e.message, "error"); }
      refreshReviewCount();
      resolve();
    });
    dlg.showModal();
  });
}

async function loadPending() {
  try {
    const res = await api("/pending-changes");
    $("#pending-list tbody").innerHTML = res.data.map((c) => `<tr>
      <td>${esc(c.patient_id)}</td><td>${changeText(c.changes)}</td>
      <td>${esc(c.source)} · ${esc(c.actor)}<br><small>${esc(new Date(c.created_at).toLocaleString("zh-CN"))}</small></td>
      <td><button class="pending-confirm" data-id="${esc(c.id)}">确认更改</button>
          <button class="secondary pending-reject" data-id="${esc(c.id)}">保持原资料</button></td></tr>`).join("")
      || '<tr><td colspan="4" class="muted">没有待确认的资料变更。</td></tr>';
    document.querySelectorAll("#pending-list button").forEach((b) => b.addEventListener("click", async () => {
      try {
        await decidePending(b.dataset.id, b.classList.contains("pending-confirm") ? "confirm" : "reject");
        loadPending(); refreshReviewCount();
      } catch (e) { toast(e.message, "error"); }
    }));
  } catch (e) { toast(e.message, "error"); }
}

// ---- possible duplicates -------------------------------------------------------------------
async function refreshReviewCount() {
  try {
    const [r, c] = await Promise.all([api("/reviews?limit=200"), api("/pending-changes?limit=200")]);
    $("#review-count").textContent = (r.count + c.count) || "";
  } catch { /* shown on open */ }
}

function who(p) {
  return `<b>${esc(p.name)}</b> ${SEX[p.sex] || ""} ${p.age ?? "?"}岁<br>${esc(p.birth_date || "")} · ${esc(p.id_number_masked || "无证件")}
    <br>${esc(p.phone_masked || "")} · ${esc(p.patient_id)}`;
}

async function loadReviews() {
  try {
    const res = await api("/reviews");
    $("#review-list tbody").innerHTML = res.data.map((r) => `<tr>
      <td>${who(r.left)}</td><td>${who(r.right)}</td><td>${r.weight}</td>
      <td><small>${Object.entries(r.explanation.fields || {}).filter(([, v]) => v.level !== "missing")
        .map(([k, v]) => `${k}: ${v.level}`).join("<br>")}</small></td>
      <td><button class="merge keep-left" data-id="${r.id}" data-survivor="${esc(r.left.empi_id)}"
            title="合并为一人，保留左侧档案（病人ID ${esc(r.left.patient_id)}）">合并·保留左</button>
          <button class="merge keep-right" data-id="${r.id}" data-survivor="${esc(r.right.empi_id)}"
            title="合并为一人，保留右侧档案（病人ID ${esc(r.right.patient_id)}）">合并·保留右</button>
          <button class="secondary distinct" data-id="${r.id}">不是同一人</button></td></tr>`).join("")
      || '<tr><td colspan="5" class="muted">没有待审核的疑似重复。</td></tr>';
    document.querySelectorAll("#review-list .merge, #review-list .distinct").forEach((b) => b.addEventListener("click", async () => {
      const decision = b.classList.contains("merge") ? "merge" : "distinct";
      try {
        await api(`/reviews/${b.dataset.id}/resolve`, { method: "POST",
          body: JSON.stringify({ decision, survivor: b.dataset.survivor || null }) });
        toast(decision === "merge" ? "已合并" : "已标记为不同的人");
        loadReviews(); refreshReviewCount();
      } catch (e) { toast(e.message, "error"); }
    }));
  } catch (e) { toast(e.message, "error"); }
}

// ---- orders and the printable form ---------------------------------------------------------
$("#ord-item").innerHTML = ITEMS.map(([code, name], i) => `<option value="${i}">${esc(name)}（${code}）</option>`).join("");

function showOrderPatient() {
  const p = state.patient;
  $("#order-patient").innerHTML = p ? `病人：<b>${esc(p.name)}</b> ${SEX[p.sex] || ""} ${p.age ?? ""}岁 · 病人ID ${esc(p.patient_id)}`
    : "先在“查找”中选择病人。";
  $("#ord-submit").disabled = !p;
}

$("#order-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!state.patient) return toast("请先选择病人", "warn");
  const f = new FormData(ev.target);
  const items = [...$("#ord-item").selectedOptions].map((o) => {
    const [code, name, modality, body_part, contrast] = ITEMS[+o.value];
    return { code, name, modality, body_part, contrast: !!contrast };
  });
  if (!items.length) return toast("请选择检查项目", "warn");
  const body = { empi_id: state.patient.empi_id, items, priority: f.get("priority"), patient_class: f.get("patient_class"),
    special: { critical: $("#ord-critical").checked, mdr: $("#ord-mdr").checked, infectious: $("#ord-infectious").checked,
               notes: f.get("notes") || null } };
  for (const k of ["visit_number", "ordering_department", "ordering_doctor", "ward", "bed", "history", "clinical_diagnosis", "purpose"]) {
    body[k] = f.get(k) || null;
  }
  try {
    const order = await api("/orders", { method: "POST", body: JSON.stringify(body) });
    toast(`申请单已提交，检查号 ${order.accession_number}`);
    ev.target.reset();
    printable(order);
  } catch (e) { toast(e.message, "error"); }
});

function printable(o) {
  const p = o.patient;
  const cls = { outpatient: "门诊", inpatient: "住院", emergency: "急诊", "physical-exam": "体检" }[o.patient_class];
  const el = $("#print-form");
  el.className = `printable ${o.special.critical ? "special-crit" : o.special.infectious ? "special-inf" : o.special.mdr ? "special-mdr" : ""}`;
  el.innerHTML = `<h1>医学影像检查申请单</h1>
    <p class="special-line">${specialTags(o.special) || ""}</p>
    <table class="form"><tr><th>姓名</th><td>${esc(p.name)}</td><th>性别</th><td>${SEX[p.sex] || ""}</td><th>年龄</th><td>${p.age ?? ""}</td></tr>
    <tr><th>病人ID</th><td>${esc(p.patient_id)}</td><th>检查号</th><td id="print-accession">${esc(o.accession_number)}</td><th>类别</th><td>${cls}</td></tr>
    <tr><th>条码</th><td colspan="5" id="print-barcode" class="barcode"></td></tr>
    <tr><th>科室</th><td>${esc(o.ordering_department || "")}</td><th>医生</th><td>${esc(o.ordering_doctor || "")}</td><th>病区/床号</th><td>${esc(o.ward || "")} ${esc(o.bed || "")}</td></tr>
    <tr><th>病史</th><td colspan="5">${esc(o.history || "")}</td></tr>
    <tr><th>临床诊断</th><td colspan="5">${esc(o.clinical_diagnosis || "")}</td></tr>
    <tr><th>检查项目</th><td colspan="5">${esc(o.items.map((i) => i.name).join("、"))}</td></tr>
    <tr><th>检查目的</th><td colspan="5">${esc(o.purpose || "")}</td></tr>
    <tr><th>特殊情况</th><td colspan="5">${esc(o.special.notes || "")}</td></tr>
    <tr><th>申请时间</th><td colspan="5">${esc(new Date(o.ordered_at).toLocaleString("zh-CN"))}</td></tr></table>
    <p class="noprint"><button id="print-btn">打印 <kbd>Ctrl+P</kbd></button></p>`;
  el.hidden = false;
  $("#print-btn").addEventListener("click", () => window.print());
  // The barcode the check-in terminals scan (Code 128 of the accession number), drawn by the service.
  // A data: URL (the page's Content-Security-Policy admits data: images, not blob: ones).
  api(`/orders/${encodeURIComponent(o.accession_number)}/barcode.svg`, { raw: true }).then((r) => r.text()).then((svg) => {
    const img = document.createElement("img");
    img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(svg);
    img.alt = "检查号条码 " + o.accession_number; img.id = "barcode-img";
    $("#print-barcode").replaceChildren(img);
  }).catch(() => { $("#print-barcode").textContent = "条码未能生成，请按检查号签到"; });
}

// ---- start ---------------------------------------------------------------------------------
ImagingShell.start({ page: "registration", main: "#main-view", title: "登记台", onReady: enter });
