// The technologists' worklist page: today's exams per room (the shell signs in and renews the token).
"use strict";
const call = ImagingShell.api("/api/worklist");
let room = null;
const $ = (id) => document.getElementById(id);
const STATUS = { SCHEDULED: "已预约", ARRIVED: "已到检", STARTED: "检查中", COMPLETED: "检查完成", DISCONTINUED: "已中止" };

const text = ImagingShell.text;

async function load() {
  $("error").textContent = "";
  const day = $("day").value;
  const rooms = await call("/rooms?date=" + encodeURIComponent(day));
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
    const time = it.start_at ? it.start_at.slice(11, 16) : "";
    tr.append(text("td", time), text("td", STATUS[it.sps_status] || it.sps_status, "s-" + it.sps_status.toLowerCase()),
      text("td", it.patient_name.replaceAll("^", " ")), text("td", it.patient_id), text("td", it.description),
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
ImagingShell.start({ page: "worklist", title: "检查工作列表", onReady: () => {
  show(load());
  setInterval(() => show(load()), 30000);
} });
