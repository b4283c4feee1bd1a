// The calling terminal: check in, call, recall, skip, start, finish, transfer, per room.
"use strict";
// Staff page: full names are shown here (staff only, every read audited by the API).
const api = ImagingShell.api("/api/queue");
const $ = (id) => document.getElementById(id);
const terminalId = "web-" + Math.random().toString(36).slice(2, 8);
const STATE = { waiting: "候诊", called: "已呼叫", skipped: "过号", in_exam: "检查中" };
const FLAG = { emergency: "急诊", critical: "危重", elderly: "老年", disabled: "残障", military: "军人" };
let room = null;

async function call(path, options = {}) {
  try {
    const body = await api(path, { ...options, headers: { "X-Terminal-Id": terminalId } });
    $("error").textContent = "";
    return body;
  } catch (e) {
    if ($("error")) $("error").textContent = e.text || e.message;
    throw e;
  }
}
const post = (path, body) => call(path, { method: "POST", body: JSON.stringify(body || {}) });
const text = ImagingShell.text;
function button(label, action) {
  const b = text("button", label); b.type = "button";
  b.onclick = () => action().then(load).catch(() => {});
  return b;
}
async function loadRooms() {
  const rooms = await call("/rooms");
  const sel = $("room"); sel.replaceChildren();
  for (const r of rooms.data) { const o = text("option", r.name); o.value = r.room_id; sel.append(o); }
  room = room || (rooms.data[0] && rooms.data[0].room_id);
  sel.value = room || "";
}
async function load() {
  if (!room) return;
  const view = await call("/rooms/" + encodeURIComponent(room) + "/terminal");
  $("room-info").textContent = view.room.name + " · 门口上限 door cap " + view.room.door_cap;
  const all = await call("/queues");
  const root = $("queues"); root.replaceChildren();
  for (const q of view.queues) {
    const box = text("section", "", "queue"); box.dataset.queueId = q.queue_id;
    const h = text("h2", q.name + " (" + q.waiting.length + " 候诊)" + (q.paused ? " · 暂停" : ""));
    h.append(" ", button(q.paused ? "恢复" : "暂停", () => post("/queues/" + q.queue_id + (q.paused ? "/resume" : "/pause"))));
    box.append(h);
    const table = document.createElement("table");
    table.append(Object.assign(document.createElement("tr"), { innerHTML:
      "<th>号</th><th>姓名</th><th>性别/年龄</th><th>检查</th><th>状态</th><th>前面</th><th>操作</th>" }));
    const rows = [...q.called, ...q.in_exam, ...q.waiting, ...q.skipped];
    rows.forEach((e) => {
      const tr = document.createElement("tr"); tr.className = "state-" + e.state; tr.dataset.entryId = e.entry_id;
      const name = text("td", e.patient_name.replaceAll("^", " "), "name");
      for (const c of e.priority_reasons) name.prepend(text("span", FLAG[c] || c, "flag"));
      const ops = document.createElement("td");
      const id = e.entry_id;
      if (e.state === "waiting" || e.state === "skipped") ops.append(button("选呼", () => post("/entries/" + id + "/select-call", { room_id: room })));
      if (e.state === "called") ops.append(button("重呼", () => post("/entries/" + id + "/recall")),
        button("过号", () => post("/entries/" + id + "/skip")));
      if (e.state === "called" || e.state === "waiting") ops.append(button("开始", () => post("/entries/" + id + "/start", { room_id: room })));
      if (e.state === "in_exam") ops.append(button("完成", () => post("/entries/" + id + "/finish")));
      if (e.state === "skipped") ops.append(button("恢复", () => post("/entries/" + id + "/restore")));
      if (e.state === "waiting") {
        const i = q.waiting.indexOf(e);
        if (i > 0) ops.append(button("上移", () => post("/entries/" + id + "/reorder", { before_entry_id: q.waiting[i - 1].entry_id })));
      }
      if (e.state !== "in_exam") {
        const sel = document.createElement("select");
        sel.setAttribute("aria-label", "转诊到其他队列");
        sel.append(text("option", "转诊…"));
        for (const other of all.data) if (other.queue_id !== q.queue_id) { const o = text("option", other.name); o.value = other.queue_id; sel.append(o); }
        sel.onchange = () => post("/entries/" + id + "/transfer", { queue_id: sel.value }).then(load).catch(() => {});
        ops.append(sel, button("离开", () => post("/entries/" + id + "/cancel", { reason: "离开" })));
      }
      tr.append(text("td", e.ticket), name, text("td", e.sex + "/" + (e.age == null ? "" : e.age)),
        text("td", e.exam_name + " " + e.accession_number), text("td", STATE[e.state] || e.state, "state"),
        text("td", e.state === "waiting" ? e.number_ahead : ""), ops);
      table.append(tr);
    });
    box.append(table); root.append(box);
  }
}
$("room").onchange = () => { room = $("room").value; load().catch(() => {}); };
$("call-next").onclick = () => post("/rooms/" + encodeURIComponent(room) + "/call-next").then(load).catch(() => {});
$("checkin").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const r = await post("/check-ins", { kind: $("kind").value, value: $("value").value });
    $("checkin-result").textContent = r.data.map((x) => x.ticket + " → " + x.queue_id + " (前面 " + x.number_ahead + ")").join("; ");
    $("value").value = ""; await load();
  } catch (err) { /* shown in #error */ }
  $("value").focus();  // the next scan goes straight in
});
// Keyboard: F2 to the scan field, F9 calls the next patient (the terminal is worked between patients, fast).
document.addEventListener("keydown", (ev) => {
  if (ev.key === "F2") { ev.preventDefault(); $("value").focus(); $("value").select(); }
  if (ev.key === "F9") { ev.preventDefault(); $("call-next").click(); }
});
ImagingShell.start({ page: "queue", title: "呼叫终端", onReady: () => {
  loadRooms().then(load).catch(() => {});
  // No room yet (none configured, or none answered): keep asking, a room may be set up meanwhile.
  setInterval(() => (room ? load() : loadRooms().then(load)).catch(() => {}), 3000);
} });
