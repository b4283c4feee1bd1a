"use strict";
// The patient's page: the session token lives in this variable only (never in storage or a cookie).
const API = "/api/patient";
const $ = (id) => document.getElementById(id);
const STATUS = {ordered: "已登记", booked: "已预约", checked_in: "已签到候检", in_exam: "检查中",
  completed: "检查完成，报告待出", reported: "报告已出", cancelled: "已取消"};
let token = null;
let countdown = null;

function say(text) { $("message").textContent = text || ""; }

async function call(path, options = {}) {
  const headers = {...(options.headers || {})};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const r = await fetch(API + path, {...options, headers, cache: "no-store"});
  if (r.status === 401 && token) { forget("登录已结束，请重新登录"); throw new Error("signed out"); }
  if (!r.ok) {
    let detail = "操作失败，请稍后再试";
    try { detail = (await r.json()).detail || detail; } catch (e) { /* not a problem document */ }
    throw new Error(detail);
  }
  return r;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function local(iso) {
  return iso ? new Date(iso).toLocaleString("zh-CN", {timeZone: "Asia/Shanghai", hour12: false}) : "";
}

function forget(text) {
  // Whatever was shown of the patient leaves the page with the session.
  token = null;
  $("exams").replaceChildren(); $("exams").hidden = true;
  $("exam").replaceChildren(); $("exam").hidden = true;
  $("signin").hidden = false; $("logout").hidden = true;
  $("code").value = "";
  say(text);
}

$("send").addEventListener("click", async () => {
  say("");
  try {
    const r = await call("/auth/code", {method: "POST", json: {phone: $("phone").value.trim()}});
    const body = await r.json();
    say(`验证码已发送至 ${body.sent_to}`);
    let left = body.retry_after_seconds;
    $("send").disabled = true;
    clearInterval(countdown);
    countdown = setInterval(() => {
      left -= 1;
      $("send").textContent = left > 0 ? `${left}秒后重发` : "获取验证码";
      if (left <= 0) { clearInterval(countdown); $("send").disabled = false; }
    }, 1000);
  } catch (e) { say(e.message); }
});

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  try {
    const r = await call("/auth/session", {method: "POST", json: {phone: $("phone").value.trim(), code: $("code").value.trim()}});
    token = (await r.json()).access_token;
    $("signin").hidden = true; $("logout").hidden = false;
    await showExams();
  } catch (e) { say(e.message); }
});

$("logout").addEventListener("click", async () => {
  try { await call("/auth/session", {method: "DELETE"}); } catch (e) { /* signed out either way */ }
  forget("已退出");
});

async function showExams() {
  const body = await (await call("/exams")).json();
  const list = $("exams");
  list.replaceChildren(el("h2", {textContent: "我的检查"}));
  if (!body.data.length) list.append(el("p", {textContent: "暂无检查"}));
  for (const exam of body.data) {
    const when = exam.appointment_start ? `预约 ${local(exam.appointment_start)} ${exam.room_name || ""}` : "";
    const queue = exam.status === "checked_in" && exam.queue_number ? `排队号 ${exam.queue_number}` : "";
    const button = el("button", {type: "button", className: "exam card"},
      el("strong", {textContent: exam.exam_name}),
      el("span", {className: `status ${exam.status}`, textContent: STATUS[exam.status] || exam.status}),
      el("div", {textContent: [exam.patient_name, when, queue].filter(Boolean).join(" · ")}));
    button.dataset.accession = exam.accession_number;
    button.addEventListener("click", () => showExam(exam.accession_number).catch((e) => say(e.message)));
    list.append(button);
  }
  list.hidden = false;
  $("exam").hidden = true;
}

async function showExam(accession) {
  const exam = await (await call(`/exams/${encodeURIComponent(accession)}`)).json();
  const box = $("exam");
  const back = el("button", {type: "button", textContent: "返回列表"});
  back.addEventListener("click", () => { box.hidden = true; box.replaceChildren(); $("exams").hidden = false; });
  box.replaceChildren(back, el("h2", {textContent: exam.exam_name}),
    el("p", {textContent: `${exam.patient_name} · 检查号 ${exam.accession_number}`}),
    el("p", {className: `status ${exam.status}`, textContent: STATUS[exam.status] || exam.status}));
  if (exam.status === "reported") {
    box.append(el("h3", {textContent: `诊断意见（${local(exam.reported_at)}，第${exam.report_version}版）`}),
      el("p", {className: "impression", textContent: exam.impression || ""}));
    const pdf = el("button", {type: "button", id: "pdf", textContent: "查看报告单（PDF）"});
    pdf.addEventListener("click", () => openPdf(accession).catch((e) => say(e.message)));
    box.append(pdf, shareForm(accession));
  } else {
    box.append(el("p", {textContent: "报告尚未发出，发出后将短信通知您。"}));
  }
  box.append(el("div", {id: "shares"}));
  $("exams").hidden = true;
  box.hidden = false;
  await showShares(accession);
}

function shareForm(accession) {
  const days = el("select", {id: "share-days"});
  days.setAttribute("aria-label", "分享有效期");
  for (const d of [1, 3, 7, 30]) days.append(el("option", {value: String(d), textContent: `${d}天内有效`, selected: d === 7}));
  const make = el("button", {type: "button", id: "share", textContent: "分享报告"});
  make.addEventListener("click", async () => {
    try {
      const r = await call(`/exams/${encodeURIComponent(accession)}/shares`, {method: "POST", json: {days: Number(days.value)}});
      const share = await r.json();
      const link = el("input", {id: "share-url", value: share.url, readOnly: true});
      link.setAttribute("aria-label", "分享链接");
      $("shares").before(el("p", {textContent: "请复制链接发给需要查看的人（仅显示一次）："}), link);
      await showShares(accession);
    } catch (e) { say(e.message); }
  });
  return el("div", {className: "row"}, days, make);
}

async function showShares(accession) {
  const body = await (await call("/shares")).json();
  const mine = body.data.filter((s) => s.accession_number === accession);
  const box = $("shares");
  box.replaceChildren(mine.length ? el("h3", {textContent: "我的分享"}) : "");
  for (const s of mine) {
    const opened = s.accesses.filter((a) => a.outcome === "opened").length;
    const state = s.revoked_at ? "已撤销" : new Date(s.expires_at) < new Date() ? "已过期" : `有效至 ${local(s.expires_at)}`;
    const item = el("div", {className: "card share"}, el("div", {textContent: `${state} · 已被打开 ${opened} 次`}));
    item.dataset.share = s.share_id;
    if (!s.revoked_at) {
      const revoke = el("button", {type: "button", className: "revoke", textContent: "撤销"});
      revoke.addEventListener("click", async () => {
        try { await call(`/shares/${s.share_id}`, {method: "DELETE"}); await showShares(accession); } catch (e) { say(e.message); }
      });
      item.append(revoke);
    }
    box.append(item);
  }
}

async function openPdf(accession) {
  const blob = await (await call(`/exams/${encodeURIComponent(accession)}/report.pdf`)).blob();
  const url = URL.createObjectURL(blob);
  const link = el("a", {href: url, target: "_blank", rel: "noopener", textContent: "打开报告单"});
  link.id = "pdf-link";
  $("exam").append(link);
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
