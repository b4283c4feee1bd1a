// The scheduling page: a day or week board of one campus's rooms, booking a waiting exam, moving a booking
// (drag, or the form), cancelling with a reason and a short-lived slip link for printing the receipt.
"use strict";
const call = ImagingShell.api("/api/scheduling");
const $ = (id) => document.getElementById(id);
const STATUS = { pending: "暂留", booked: "已预约", arrived: "已到院", "checked-in": "已签到", fulfilled: "已完成" };
const LIVE = Object.keys(STATUS).join(",");
const WEEKDAYS = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];
let rooms = [], view = "day", picked = null, proposal = null, selected = null, appts = [];

const el = ImagingShell.el;
const pad = (n) => String(n).padStart(2, "0");
const ymd = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const hm = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
const local = (iso) => { const d = new Date(iso); return `${ymd(d)} ${hm(d)}`; };
// A patient as the API gives them (a request's copy may come as JSON text); the name as people write it
// (DICOM "ZHANG^SAN=张三" shows 张三).
function person(p) { if (typeof p === "string") { try { return JSON.parse(p); } catch (e) { return {}; } } return p || {}; }
const name = (p) => String(person(p).name || "").split("=").pop().replaceAll("^", "");
function dayStart() { const [y, m, d] = $("day").value.split("-").map(Number); return new Date(y, m - 1, d); }
function addDays(d, n) { const x = new Date(d); x.setDate(x.getDate() + n); return x; }
function weekday(d) { return ((d.getDay() + 6) % 7) + 1; } // ISO: 1 = Monday
// The built-in constraints a booking can break, in the desk's words (rules an admin wrote carry their own reason).
const BUILT_IN = { "slot-taken": "该时段已有预约", "working-hours": "不在检查室工作时间内", "time-slice": "不在检查室的时间片上",
  closure: "检查室该时段停用（维护或节假日）", "room-active": "检查室未启用", "room-modality": "检查室设备类型与检查不符",
  "room-capability": "检查室不具备该检查所需条件", technologist: "该时段没有排班技师", "channel-quota": "该预约渠道名额已满",
  "one-patient": "该检查已有有效预约", "patient-busy": "患者该时段已有其他检查", "order-cancelled": "申请单已取消",
  "no-slot": "预约期限内没有满足全部规则的空位" };
function refusal(e) {
  const v = e && e.body && Array.isArray(e.body.violations) ? e.body.violations : [];
  if (!v.length) return e.text || e.message;
  return "无法预约：" + [...new Set(v.map((x) => (x.type === "built-in" && BUILT_IN[x.rule]) || x.reason))].join("；");
}
function show(promise) {
  return promise.catch((e) => { if ($("error")) $("error").textContent = refusal(e); });
}
function ok() { $("error").textContent = ""; }

// ---- rooms and the board ----------------------------------------------------------------------
async function loadRooms() {
  rooms = (await call("/rooms")).data.filter((r) => r.active);
  const campuses = [...new Set(rooms.map((r) => r.campus))].sort();
  const keep = $("campus").value;
  $("campus").replaceChildren(...campuses.map((c) => el("option", { value: c, text: c })));
  if (campuses.includes(keep)) $("campus").value = keep;
}
const campusRooms = () => rooms.filter((r) => r.campus === $("campus").value)
  .sort((a, b) => a.modality.localeCompare(b.modality) || a.name.localeCompare(b.name, "zh"));

function range() {
  const from = view === "day" ? dayStart() : addDays(dayStart(), 1 - weekday(dayStart()));
  return [from, addDays(from, view === "day" ? 1 : 7)];
}

async function loadBoard() {
  const mine = campusRooms();
  const [from, to] = range();
  const q = new URLSearchParams({ start: from.toISOString(), end: to.toISOString(), limit: "1000" });
  const ids = new Set(mine.map((r) => r.id));
  appts = (await call("/appointments?" + q)).data.filter((a) => ids.has(a.room_id) && STATUS[a.status]);
  const board = $("board");
  const head = el("tr", {}, el("th", { class: "time", text: view === "day" ? "时间" : "日期" }),
    ...mine.map((r) => el("th", { scope: "col", text: `${r.name}（${r.modality}）` })));
  const rows = [];
  if (view === "day") {
    const open = mine.flatMap((r) => r.sessions.filter((s) => s.weekday === weekday(from)));
    const first = open.length ? Math.min(...open.map((s) => Number(s.starts.slice(0, 2)))) : 8;
    const last = open.length ? Math.max(...open.map((s) => Math.ceil(Number(s.ends.slice(0, 2)) + Number(s.ends.slice(3, 5)) / 60))) : 18;
    for (let h = first; h < Math.max(last, first + 1); h++) {
      const at = new Date(from); at.setHours(h);
      rows.push({ label: `${pad(h)}:00`, start: at, end: new Date(at.getTime() + 3600e3) });
    }
  } else {
    for (let i = 0; i < 7; i++) {
      const d = addDays(from, i);
      rows.push({ label: `${WEEKDAYS[i]} ${d.getMonth() + 1}/${d.getDate()}`, start: d, end: addDays(d, 1) });
    }
  }
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr", {}, el("th", { scope: "row", class: "time", text: row.label }));
    for (const r of mine) {
      const td = el("td", { "data-room": r.id, "data-start": row.start.toISOString() });
      if (view === "day" && !openAt(r, row.start)) td.classList.add("closed");
      for (const a of appts.filter((x) => x.room_id === r.id && new Date(x.start) >= row.start && new Date(x.start) < row.end)) {
        td.append(apptButton(a));
      }
      droppable(td);
      tr.append(td);
    }
    body.append(tr);
  }
  board.replaceChildren(el("thead", {}, head), body);
  $("board-title").textContent = !mine.length ? "还没有检查室：请管理员在「系统管理」中添加检查室或载入初始配置"
    : `${$("campus").value} · ${view === "day" ? ymd(from) : ymd(from) + " 至 " + ymd(addDays(to, -1))}` +
    ` · ${appts.length} 个预约`;
  if (selected) { const again = appts.find((a) => a.id === selected.id); if (again) select(again); }
}

function openAt(room, at) {
  const t = hm(at);
  return room.sessions.some((s) => s.weekday === weekday(at) && s.starts.slice(0, 5) <= t && t < s.ends.slice(0, 5));
}

function apptButton(a) {
  const b = el("button", { type: "button", class: `appt ${a.status}${selected && selected.id === a.id ? " selected" : ""}`,
    draggable: document.body.classList.contains("read-only") ? null : "true", "data-id": a.id,
    title: `${name(a.patient)} ${a.exam_name} ${local(a.start)}`,
    text: `${hm(new Date(a.start))} ${name(a.patient)} · ${a.exam_name}${a.status === "booked" ? "" : " · " + STATUS[a.status]}` });
  b.addEventListener("click", () => select(a));
  b.addEventListener("dragstart", (ev) => { ev.dataTransfer.setData("text/plain", a.id); ev.dataTransfer.effectAllowed = "move"; });
  return b;
}

// Drag a booking to another cell: the same time of day in another room (or day), or the cell's hour.
function droppable(td) {
  td.addEventListener("dragover", (ev) => { ev.preventDefault(); td.classList.add("drop"); });
  td.addEventListener("dragleave", () => td.classList.remove("drop"));
  td.addEventListener("drop", (ev) => {
    ev.preventDefault(); td.classList.remove("drop");
    const a = appts.find((x) => x.id === ev.dataTransfer.getData("text/plain"));
    if (!a) return;
    const cell = new Date(td.dataset.start), was = new Date(a.start);
    if (view === "week") cell.setHours(was.getHours(), was.getMinutes());
    else if (cell.getHours() === was.getHours()) cell.setMinutes(was.getMinutes());
    show(reschedule(a, td.dataset.room, cell));
  });
}

// ---- a booking: details, move, cancel, slip ----------------------------------------------------
function select(a) {
  selected = a;
  document.querySelectorAll(".appt.selected").forEach((x) => x.classList.remove("selected"));
  const b = document.querySelector(`.appt[data-id="${a.id}"]`); if (b) b.classList.add("selected");
  const room = rooms.find((r) => r.id === a.room_id);
  $("detail-info").replaceChildren(...[["患者", `${name(a.patient)}（${person(a.patient).patient_id || ""}）`],
    ["检查", a.exam_name], ["检查号", a.accession_number], ["时间", local(a.start) + " – " + hm(new Date(a.end))],
    ["检查室", room ? room.name : a.room_id], ["状态", STATUS[a.status] || a.status]]
    .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  if ($("move")) $("move-room").replaceChildren(...rooms.filter((r) => r.modality === a.modality)
    .map((r) => el("option", { value: r.id, text: `${r.campus} ${r.name}` })));
  if ($("move")) {
    $("move-room").value = a.room_id;
    const s = new Date(a.start);
    $("move-start").value = `${ymd(s)}T${hm(s)}`;
    $("cancel-reason").value = "";
  }
  $("slip-link").hidden = true; $("slip-expiry").textContent = "";
  $("detail").hidden = false;
}

async function reschedule(a, roomId, start) {
  ok();
  const moved = await call(`/appointments/${a.id}/reschedule`, { method: "POST",
    body: { room_id: roomId, start: start.toISOString(), reason: "排程看板改约" } });
  selected = moved;
  const [from, to] = range(), at = new Date(moved.start);
  if (at < from || at >= to) $("day").value = ymd(at);  // the board follows the booking to its day
  await loadBoard();
  $("proposal").textContent = "";
  $("error").textContent = "";
  announce(`已改约到 ${local(moved.start)}`);
}
function announce(text) { $("board-title").textContent = text + " · " + $("board-title").textContent; }

$("move").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (selected) show(reschedule(selected, $("move-room").value, new Date($("move-start").value)));
});
$("cancel").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!selected) return;
  show((async () => {
    ok();
    await call(`/appointments/${selected.id}/cancel`, { method: "POST", body: { reason: $("cancel-reason").value.trim() } });
    selected = null; $("detail").hidden = true;
    await Promise.all([loadBoard(), loadRequests()]);
    announce("已取消预约");
  })());
});
$("slip").addEventListener("click", () => show((async () => {
  ok();
  const link = await call(`/appointments/${selected.id}/slip-link`, { method: "POST" });
  const a = $("slip-link");
  a.href = link.url; a.hidden = false; a.focus();
  $("slip-expiry").textContent = `（${Math.round(link.expires_in / 60)} 分钟内有效）`;
})()));

// ---- waiting exams and booking -----------------------------------------------------------------
async function loadRequests() {
  if (!$("requests")) return;
  const order = $("order-id").value.trim();
  const q = new URLSearchParams({ status: "open", limit: "100" });
  if (order) q.set("order_id", order);
  const waiting = (await call("/requests?" + q)).data.filter((r) => !r.appointment_id);
  $("requests").replaceChildren(...(waiting.length ? waiting.map((r) => el("li", {},
    (() => {
      const b = el("button", { type: "button", "data-order": r.order_id, "data-exam": r.exam_code,
        class: picked && picked.order_id === r.order_id && picked.exam_code === r.exam_code ? "active" : "",
        text: `${name(r.patient)} · ${r.exam_name} · ${r.accession_number}` });
      b.addEventListener("click", () => pick(r, b));
      return b;
    })())) : [el("li", { class: "muted", text: "没有待预约的检查" })]));
}

function pick(r, button) {
  picked = r; proposal = null;
  document.querySelectorAll("#requests button.active").forEach((x) => x.classList.remove("active"));
  button.classList.add("active");
  $("booking-what").textContent = `${name(r.patient)} ${r.exam_name}`;
  $("proposal").textContent = ""; $("confirm").hidden = true; $("booking").hidden = false;
  $("find").focus();
}

async function find() {
  if (!picked) return;
  ok();
  const body = { order_id: picked.order_id, exam_code: picked.exam_code, campus: $("campus").value || null };
  const nb = dayStart();
  if (nb > new Date()) body.not_before = nb.toISOString();
  proposal = await call("/find", { method: "POST", body });
  $("proposal").textContent = `最早可约：${proposal.campus} ${proposal.room_name} ${local(proposal.start)}（请于 ${hm(new Date(proposal.arrive_by))} 前到达）`;
  $("confirm").hidden = false; $("confirm").focus();
}

async function confirm() {
  if (!picked || !proposal) return;
  ok();
  const a = await call("/appointments", { method: "POST", body: { order_id: picked.order_id, exam_code: picked.exam_code,
    room_id: proposal.room_id, start: proposal.start } });
  picked = null; proposal = null; $("booking").hidden = true;
  $("day").value = ymd(new Date(a.start));
  selected = a;
  await Promise.all([loadBoard(), loadRequests()]);
  announce(`已预约 ${local(a.start)}`);
  const b = document.querySelector(`.appt[data-id="${a.id}"]`); if (b) b.focus();
}

$("find").addEventListener("click", () => show(find()));
$("confirm").addEventListener("click", () => show(confirm()));
$("order-search").addEventListener("submit", (ev) => { ev.preventDefault(); show(loadRequests()); });
$("refresh").addEventListener("click", () => show(Promise.all([loadBoard(), loadRequests()])));
$("campus").addEventListener("change", () => show(loadBoard()));
$("day").addEventListener("change", () => show(loadBoard()));
for (const v of ["day", "week"]) {
  $("view-" + v).addEventListener("click", () => {
    view = v;
    $("view-day").classList.toggle("active", v === "day"); $("view-week").classList.toggle("active", v === "week");
    show(loadBoard());
  });
}
document.addEventListener("keydown", (ev) => {
  if (ev.key === "F5") { ev.preventDefault(); $("refresh").click(); }
  if (ev.altKey && (ev.key === "f" || ev.key === "F")) { ev.preventDefault(); if ($("find")) $("find").click(); }
});

$("day").value = ymd(new Date());
// Booking, moving and cancelling are for the roles scheduling's API lets book; the others look at the board.
const BOOKERS = ["clerk", "nurse", "clinician", "admin"];
ImagingShell.start({ page: "scheduling", title: "预约排程", onReady: (me) => show((async () => {
  if (!me.roles.some((r) => BOOKERS.includes(r))) {
    for (const id of ["order-search", "requests", "booking", "move", "cancel"]) $(id).remove();
    document.querySelector(".side h2").textContent = "只读：点选预约查看详情";
    document.querySelectorAll(".appt").forEach((b) => b.removeAttribute("draggable"));
    document.body.classList.add("read-only");
  }
  await loadRooms();
  await Promise.all([loadBoard(), loadRequests()]);
})()) });
