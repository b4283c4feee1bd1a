// Films the matcher could not place: the evidence read, the candidates, a person's match.
"use strict";
const api = ImagingShell.api("/api/print");
const REASONS = {
  "conflict": "证据冲突", "identifier-not-known": "识别号无对应检查",
  "no-identifier-read": "未识别到号码", "accession-not-read": "缺检查号",
  "patient-id-not-read": "缺患者ID", "ambiguous": "多个检查",
  "study-uid-unknown": "Study UID 未知", "study-uid-partly-unknown": "部分 Study UID 未知",
  "order-cancelled": "检查已取消", "ocr-failed": "识别失败",
};
const $ = (id) => document.getElementById(id);
async function call(path, init) {
  try {
    return await api(path, { ...(init || {}), raw: true });
  } catch (e) {
    if ($("error")) $("error").textContent = e.text || e.message;
    throw e;
  }
}
const text = ImagingShell.text;
async function image(id) {
  const r = await call("/films/" + id + "/image.png");
  const img = document.createElement("img"); img.src = URL.createObjectURL(await r.blob()); img.alt = id; return img;
}
async function load() {
  $("error").textContent = "";
  const list = await (await call("/films?match_status=review&limit=100")).json();
  const body = $("items"); body.replaceChildren();
  for (const f of list.data) {
    const tr = document.createElement("tr");
    const cell = document.createElement("td"); image(f.id).then((img) => cell.append(img)).catch(() => {});
    const d = f.match_detail || {};
    // What was read where, and who it names: the person decides on the evidence, not on a score.
    const read = document.createElement("td");
    for (const r of d.readings || []) {
      read.append(text("div", r.source + ": " + [].concat(r.patient_ids, r.accessions, r.unknown_patient_ids,
        r.unknown_accessions).join(" ")));
    }
    if ((d.sent_study_uids || []).length) read.append(text("div", "Study UID: " + d.sent_study_uids.join(" ")));
    const reason = document.createElement("td");
    reason.append(text("div", REASONS[d.reason] || d.reason || "", "reason"), text("div", d.explanation || ""));
    for (const c of d.candidates || []) {
      reason.append(text("div", "候选 " + c.accession_number + " " + c.patient_id + " " + c.patient_name, "candidate"));
    }
    const form = document.createElement("form");
    const input = document.createElement("input"); input.placeholder = "检查号";
    input.setAttribute("list", "s-" + f.id); input.value = (d.suggestions || [])[0] || "";
    const dl = document.createElement("datalist"); dl.id = "s-" + f.id;
    for (const s of d.suggestions || []) { const o = document.createElement("option"); o.value = s; dl.append(o); }
    const b = text("button", "确认");
    form.append(input, dl, b);
    form.onsubmit = async (e) => { e.preventDefault();
      await call("/films/" + f.id + "/match", { method: "POST", body: JSON.stringify({ accession_number: input.value }) });
      load().catch(() => {}); };
    const match = document.createElement("td"); match.append(form);
    tr.append(cell, text("td", f.printed_at.replace("T", " ").slice(0, 19) + " " + f.calling_ae_title + " " + f.display_format),
      reason, read, match);
    body.append(tr);
  }
  $("count").textContent = list.count + " 张";
}
$("refresh").onclick = () => load().catch(() => {});
ImagingShell.start({ page: "print", title: "胶片匹配", onReady: () => load().catch(() => {}) });
