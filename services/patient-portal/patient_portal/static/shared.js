"use strict";
// A share link's page: the token is the URL fragment, posted once; nothing is stored on this device.
(async () => {
  const token = location.hash.slice(1);
  const say = (text) => { document.getElementById("message").textContent = text; };
  if (!token) { say("链接不完整"); return; }
  const r = await fetch("/api/patient/shared", {method: "POST", cache: "no-store",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({token})});
  const body = await r.json();
  if (!r.ok) { say(body.detail || "无法打开此链接"); return; }
  const box = document.getElementById("report");
  const line = (tag, text, className = "") => Object.assign(document.createElement(tag), {textContent: text, className});
  const when = body.reported_at ? new Date(body.reported_at).toLocaleString("zh-CN", {timeZone: "Asia/Shanghai", hour12: false}) : "";
  box.append(line("h2", body.exam_name), line("p", `患者 ${body.patient_name}`),
    body.impression ? line("h3", `诊断意见（${when}）`) : line("p", "报告尚未发出"),
    line("p", body.impression || "", "impression"),
    line("p", `链接有效期至 ${new Date(body.expires_at).toLocaleDateString("zh-CN", {timeZone: "Asia/Shanghai"})}`, "hint"));
  box.hidden = false;
})();
