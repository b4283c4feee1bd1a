// The technologists' worklist page: today's exams per room (the shell signs in and renews the token).
"use strict";
const call = ImagingShell.api("/api/worklist");
let room = null;
const $ = (id) => document.getElementById(id);
const STATUS = { SCHEDULED: "已预约", ARRIVED: "已到检", STARTED: "检查中", COMPLETED: "检查完成", DISCONTINUED: "已中止" };

const text = ImagingShell.text;
// A name as people write it: DICOM "ZHANG^SAN=张三" shows 张三.
const personName = (n) => String(n || "").split("=").pop().replaceAll("^", "");

async function load() {
  $("error").textContent = "";
  const day = $("day").value;
  // Rooms by their place (campus, building, room), the ones without a place after, by AE title.
  const rooms = (await call("/rooms?date=" + encodeURIComponent(day))).sort((a, b) =>
    (!a.location - !b.location) || String(a.location || a.station_ae_title || "").localeCompare(
      String(b.location || b.station_ae_title || ""), "zh-CN", { numeric: true }));
  const bar = $("rooms"); bar.replaceChildren();
  if (room === null && rooms.length) room = rooms[0].room_id || "";
  for (const r of rooms) {
    const label = (r.location || r.station_ae_title || "未分配") +
      " (" + (r.scheduled + r.arrived + r.in_progress) + "/" + (r.scheduled + r.arrived + r.in_progress + r.completed) + ")";
    const b = text("button", label, (r.room_id || "") === room ? "active" : "");
    b.type = "button";
    b.onclick = () => { room = r.room_id || ""; show(load()); };
    bar.append(b);
  }
  let path = "/items?date=" + encodeURIComponent(day);
  if (room) path += "&room_id=" + encodeURIComponent(room);
  const list = await call(path);
  const body = $("items"); body.replaceChildren();
  for (const it of list.data) {
    const tr = document.createElement("tr");
    const time = it.start_at ? new Date(it.start_at).toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit", hour12: false }) : "";
    tr.append(text("td", time), text("td", STATUS[it.sps_status] || it.sps_status, "s-" + it.sps_status.toLowerCase()),
      text("td", personName(it.patient_name)), text("td", it.patient_id), text("td", it.description),
      text("td", it.modality), text("td", it.station_ae_title), text("td", it.accession_number),
      text("td", it.medical_alerts, "alert"));
    body.append(tr);
  }
  $("count").textContent = list.count + " 项";
}
// An error is shown in Chinese above the list; an ended session has already emptied the page.
function show(promise) { return promise.catch((e) => { if ($("error")) $("error").textContent = e.text || e.message; }); }

$("refresh").onclick = () => show(load());
$("day").onchange = () => { room = null; show(load()); };
const now = new Date();
$("day").value = new Date(now.getTime() - now.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
// Live: the service says when the worklist changed (an order, a cancellation, a merge, MPPS from a modality)
// and the list reloads at once. The stream ends every two minutes and is opened again through the shell
// (which renews the token, and ends here when the session ended); a lost one is retried, slower each time.
let reloading = null;
function changed() {
  if (!reloading) reloading = show(load()).finally(() => { reloading = null; });
}
async function follow() {
  let wait = 1000;
  for (;;) {
    try {
      const r = await call("/changes", { raw: true });
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        for (let i; (i = buf.indexOf("\n\n")) >= 0; buf = buf.slice(i + 2)) {
          const kind = buf.slice(0, i).match(/^event: (\w+)/m);
          if (kind && kind[1] === "ready") { $("live").textContent = "实时更新"; changed(); wait = 1000; }
          if (kind && kind[1] === "changed") changed();
        }
      }
    } catch (e) {
      if (e.status === 401 || e.status === 403) return;
    }
    $("live").textContent = "正在重新连接…";
    await new Promise((done) => setTimeout(done, wait));
    wait = Math.min(wait * 2, 30000);
  }
}
ImagingShell.start({ page: "worklist", title: "检查工作列表", onReady: () => {
  show(load());
  follow();
} });
