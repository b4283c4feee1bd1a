// The clinician's acknowledgement page, opened from a link: sign in if need be, read, acknowledge.
"use strict";
// Opened from a link (HIS, SMS): signs in here if need be, then shows the value and records the reading.
const id = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const call = ImagingShell.api("/api/critical-values/critical-values/" + encodeURIComponent(id));
const $ = (x) => document.getElementById(x);
function fail(e) { if ($("error")) $("error").textContent = e.text || e.message; }
async function load() {
  const cv = await call("");
  $("detail").hidden = false;
  $("finding").textContent = cv.finding; $("patient").textContent = cv.patient.name || cv.patient_id;
  $("acc").textContent = cv.accession_number; $("raised").textContent = new Date(cv.raised_at).toLocaleString("zh-CN");
  $("state").textContent = cv.acknowledged_at ? "已确认 acknowledged by " + cv.acknowledged_by : cv.state;
  $("ack").disabled = !!cv.closed_at;
}
$("ack").onclick = async () => {
  try {
    await call("/acknowledge", { method: "POST", body: { action_taken: $("action").value || null } });
    $("error").textContent = "";
    await load();
  } catch (e) { fail(e); }
};
ImagingShell.start({ page: "critical-values", title: "危急值确认", onReady: () => load().catch(fail) });
