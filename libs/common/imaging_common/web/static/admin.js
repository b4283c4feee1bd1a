// The administration page /ui/admin/: the starter configuration, users and roles, rooms and hours, the exam
// catalogue, queues and screens, report templates, phrases and receivers, the critical-value dictionary and
// escalation chain. Every change goes through the owning service's admin API (which audits it); admins only.
"use strict";
const api = {
  registration: ImagingShell.api("/api/registration"), scheduling: ImagingShell.api("/api/scheduling"),
  queue: ImagingShell.api("/api/queue"), reporting: ImagingShell.api("/api/reporting"),
  critical: ImagingShell.api("/api/critical-values"),
};
const STARTER = [["scheduling", "预约排程"], ["queue", "排队叫号"], ["reporting", "诊断报告"], ["critical-values", "危急值"]];
const PARTS = { rooms: "检查室", sessions: "工作时间", exam_types: "检查项目", queues: "候诊队列", screens: "叫号屏",
  templates: "报告模板", phrases: "常用词", escalation_chain: "升级链",
  placement_rules: "分诊规则", dictionary_items: "危急值项目" };
const WEEKDAYS = ["一", "二", "三", "四", "五", "六", "日"];
const CHAIN_ACTIONS = { repeat: "再次通知", "backup-clinician": "通知备班医生", "phone-task": "电话通知任务",
  "department-head": "通知科主任" };
const $ = (id) => document.getElementById(id);

const el = ImagingShell.el;
const shown = (v) => v == null ? "" : Array.isArray(v) ? v.join("、") : typeof v === "boolean" ? (v ? "是" : "否")
  : typeof v === "object" ? JSON.stringify(v) : String(v);
// A table of rows: columns [key or function (text or an element), header]; `actions(row)` adds the last cell's buttons.
function table(id, columns, rows, actions) {
  const head = el("tr", {}, ...columns.map(([, h]) => el("th", { scope: "col", text: h })), ...(actions ? [el("th", { text: "操作" })] : []));
  const cell = (v) => v instanceof Node ? el("td", {}, v) : el("td", { text: v });
  const body = rows.length ? rows.map((r) => el("tr", {}, ...columns.map(([k]) => cell(typeof k === "function" ? k(r) : shown(r[k]))),
    ...(actions ? [el("td", {}, ...actions(r))] : [])))
    : [el("tr", {}, el("td", { colspan: String(columns.length + (actions ? 1 : 0)), class: "muted", text: "暂无" }))];
  $(id).replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}
// An "edit" button: fills the form above with the row (saving is the same PUT, which replaces it).
function editButton(fill, label) {
  const b = el("button", { type: "button", class: "link", text: "编辑", "aria-label": label });
  b.addEventListener("click", fill);
  return b;
}
// An editable table over `rows`, whose objects the inputs change in place (keys no column shows are kept):
// columns [key, header, kind, options], kind text | number | list (comma-separated) | check | select (options
// {value: label}, "" for none); inputs are named `${name(i)}${header}` for screen readers; a 删除 button per row.
// Returns the function that draws it again (after a row is added).
function grid(id, columns, rows, name) {
  const draw = () => table(id, columns.map(([key, header, kind, options]) =>
    [(r) => input(r, key, kind || "text", options, name(rows.indexOf(r)) + header), header]), rows, (r) => {
    const b = el("button", { type: "button", class: "link", text: "删除", "aria-label": "删除" + name(rows.indexOf(r)) });
    b.addEventListener("click", () => { rows.splice(rows.indexOf(r), 1); draw(); });
    return [b];
  });
  draw();
  return draw;
}
function input(row, key, kind, options, label) {
  const v = row[key];
  const e = kind === "select"
    ? el("select", { "aria-label": label }, ...Object.entries(options).map(([k, t]) => el("option", { value: k, text: t, selected: String(v ?? "") === k ? "" : null })))
    : el("input", { "aria-label": label, type: { number: "number", check: "checkbox" }[kind] || "text", checked: kind === "check" && v ? "" : null,
      value: kind === "check" ? null : kind === "list" ? (v || []).join(",") : String(v ?? ""), ...(kind === "number" ? options : {}) });
  e.addEventListener("change", () => {
    const t = e.value.trim();
    row[key] = kind === "check" ? e.checked : kind === "number" ? Number(t) : kind === "list" ? t.split(/[,，\s]+/).filter(Boolean) : t === "" ? null : t;
  });
  return e;
}
function failed(id, e) {
  $(id).replaceChildren(el("tbody", {}, el("tr", {}, el("td", { class: "error",
    text: e.status === 403 ? "无权限读取" : (e.text || e.message) }))));
}
function show(promise) { return promise.catch((e) => { if ($("error")) $("error").textContent = e.text || e.message; }); }
function ok() { $("error").textContent = ""; }
const form = (f) => Object.fromEntries(new FormData(f).entries());

// ---- tabs ------------------------------------------------------------------------------------
const loaders = {};
function openTab(name) {
  for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const s of document.querySelectorAll("[role=tabpanel]")) s.hidden = s.id !== "tab-" + name;
  history.replaceState(null, "", "#" + name);
  ok();
  show(loaders[name]());
}
for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => openTab(b.dataset.tab));

// ---- the starter configuration ---------------------------------------------------------------
async function starter(method) {
  ok();
  $("starter-status").textContent = method === "POST" ? "正在载入……" : "正在读取……";
  const rows = [];
  for (const [prefix, label] of STARTER) {
    try {
      const r = await ImagingShell.api(`/api/${prefix}`)("/admin/starter", { method });
      for (const [part, t] of Object.entries(r.parts)) rows.push({ service: label, part: PARTS[part] || part, created: t.created, kept: t.kept });
    } catch (e) { rows.push({ service: label, part: "—", created: e.text || e.message, kept: "" }); }
  }
  table("starter-table", [["service", "服务"], ["part", "内容"], ["created", method === "POST" ? "本次新增" : "将新增"], ["kept", "已有（保持不变）"]], rows);
  const added = rows.reduce((n, r) => n + (Number(r.created) || 0), 0);
  $("starter-status").textContent = method === "POST" ? `已载入初始配置：新增 ${added} 项` : `预览：载入将新增 ${added} 项`;
}
loaders.starter = () => starter("GET");
$("starter-preview").addEventListener("click", () => show(starter("GET")));
$("starter-load").addEventListener("click", () => show(starter("POST")));

// ---- users and roles -------------------------------------------------------------------------
const ROLES = Object.keys(ImagingShell.ROLE_NAMES);
$("user-roles").append(...ROLES.map((r) => el("label", {}, el("input", { type: "checkbox", name: "role", value: r }), ImagingShell.ROLE_NAMES[r])));
loaders.users = async () => {
  try {
    const users = (await api.registration("/auth/users")).data;
    table("users-table", [["username", "用户名"], ["display_name", "姓名"], [(u) => u.roles.map((r) => ImagingShell.ROLE_NAMES[r] || r).join("、"), "角色"],
      [(u) => u.active ? "在用" : "已停用", "状态"], [(u) => u.last_login_at ? new Date(u.last_login_at).toLocaleString("zh-CN") : "", "最近登录"]],
    users, (u) => [el("button", { type: "button", class: "secondary", "data-user": u.username, text: u.active ? "停用" : "启用" }),
      editButton(() => editUser(u), `修改 ${u.username} 的角色`)]);
    for (const b of $("users-table").querySelectorAll("button[data-user]")) {
      const u = users.find((x) => x.username === b.dataset.user);
      b.addEventListener("click", () => show((async () => {
        await api.registration(`/auth/users/${u.id}`, { method: "PATCH", body: { active: !u.active } });
        await loaders.users();
      })()));
    }
  } catch (e) { failed("users-table", e); }
};
// Editing a user: the same form, the name fixed, saved as a PATCH of the roles and name (the user's sessions
// end at once, so the next sign-in carries the new roles).
let editing = null;
function editUser(u) {
  editing = u;
  const f = $("user-form");
  f.username.value = u.username; f.username.readOnly = true; f.display_name.value = u.display_name || "";
  for (const c of f.querySelectorAll("input[name=role]")) c.checked = u.roles.includes(c.value);
  $("user-submit").textContent = "保存角色"; $("user-new").hidden = false;
  f.display_name.focus();
}
function newUser() {
  editing = null;
  const f = $("user-form");
  f.reset(); f.username.readOnly = false;
  $("user-submit").textContent = "新建用户"; $("user-new").hidden = true;
}
$("user-new").addEventListener("click", newUser);
$("user-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const f = ev.target, roles = [...f.querySelectorAll("input[name=role]:checked")].map((x) => x.value);
    if (!roles.length) throw new Error("请至少选择一个角色");
    if (editing) {
      await api.registration(`/auth/users/${editing.id}`, { method: "PATCH", body: { roles, display_name: f.display_name.value.trim() } });
      newUser();
      await loaders.users();
      return;
    }
    const r = await api.registration("/auth/users", { method: "POST", body: { username: f.username.value.trim(),
      display_name: f.display_name.value.trim(), roles } });
    $("user-secret").hidden = false;
    $("user-secret").textContent = `已新建 ${r.user.username}。一次性密码：${r.password || "（已设置）"}；动态验证码密钥：${r.totp_secret}` +
      "（仅显示这一次，请当面交给本人，首次登录后修改密码）";
    f.reset();
    await loaders.users();
  })());
});

// ---- rooms and working hours (scheduling) ----------------------------------------------------
$("room-days").append(...WEEKDAYS.map((d, i) => el("label", {}, el("input", { type: "checkbox", name: "day", value: String(i + 1),
  checked: i < 5 ? "" : null }), "周" + d)));
loaders.rooms = async () => {
  try {
    const rooms = (await api.scheduling("/rooms")).data;
    const hours = (r) => r.sessions.map((s) => `周${WEEKDAYS[s.weekday - 1]} ${s.starts.slice(0, 5)}-${s.ends.slice(0, 5)}`).join("，");
    table("rooms-table", [["campus", "院区"], ["id", "编号"], ["name", "名称"], ["modality", "设备"], ["location", "位置"],
      [(r) => hours(r).slice(0, 80) + (hours(r).length > 80 ? "…" : ""), "工作时间"], [(r) => r.active ? "启用" : "停用", "状态"]], rooms,
    (r) => [editButton(() => {
      const f = $("room-form");
      for (const k of ["id", "name", "modality", "campus", "location"]) f[k].value = r[k] || "";
      f.station_ae_title.value = r.station_ae_title || "";
      const days = new Set(r.sessions.map((x) => x.weekday));
      for (const d of f.querySelectorAll("input[name=day]")) d.checked = days.has(Number(d.value));
      if (r.sessions.length) { f.starts.value = r.sessions[0].starts.slice(0, 5); f.ends.value = r.sessions[r.sessions.length - 1].ends.slice(0, 5); }
      f.name.focus();
    }, `编辑 ${r.id}`)]);
  } catch (e) { failed("rooms-table", e); }
};
$("room-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const f = ev.target, v = form(f);
    const days = [...f.querySelectorAll("input[name=day]:checked")].map((x) => Number(x.value));
    const body = { id: v.id.trim(), name: v.name.trim(), modality: v.modality.trim().toUpperCase(), campus: v.campus.trim(),
      location: v.location.trim(), station_ae_title: v.station_ae_title.trim() || null,
      sessions: days.map((d) => ({ weekday: d, starts: v.starts, ends: v.ends })) };
    await api.scheduling(`/rooms/${encodeURIComponent(body.id)}`, { method: "PUT", body });
    f.reset();
    $("error").textContent = "";
    await loaders.rooms();
  })());
});

// ---- the exam catalogue (scheduling) ---------------------------------------------------------
const CONTRAST = { none: "无", iodinated: "碘", gadolinium: "钆", barium: "钡", other: "其他" };
loaders.exams = async () => {
  try {
    const exams = (await api.scheduling("/exam-types")).data;
    table("exams-table", [["code", "代码"], ["name", "名称"], ["modality", "设备"], ["body_part", "部位"], ["duration_minutes", "时长"],
      [(x) => CONTRAST[x.contrast] || x.contrast, "对比剂"], ["fasting", "空腹"], [(x) => x.auto_created ? "由申请单自动生成，待审核" : "", "备注"]], exams,
    (x) => [editButton(() => {
      const f = $("exam-form");
      for (const k of ["code", "name", "modality", "body_part", "duration_minutes", "preparation_minutes", "contrast", "preparation"]) f[k].value = x[k] ?? "";
      f.fasting.checked = !!x.fasting;
      f.name.focus();
    }, `编辑 ${x.code}`)]);
  } catch (e) { failed("exams-table", e); }
};
$("exam-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const f = ev.target, v = form(f);
    const body = { code: v.code.trim(), name: v.name.trim(), modality: v.modality.trim().toUpperCase(), body_part: v.body_part.trim() || null,
      duration_minutes: Number(v.duration_minutes), preparation_minutes: Number(v.preparation_minutes || 0), contrast: v.contrast,
      fasting: f.fasting.checked, preparation: v.preparation.trim() };
    await api.scheduling(`/exam-types/${encodeURIComponent(body.code)}`, { method: "PUT", body });
    f.reset();
    await loaders.exams();
  })());
});

// ---- queues and screens, receivers (changed through their services' APIs) ---------------------------
// Queues and screens: a new one from the form; an existing one is edited from its row and saved with what
// the form does not show (priority policy, skip rule, layout, times, masking, token) as it was.
let queues = [], screens = [];
function fillForm(f, row, keys) {
  for (const k of keys) f[k].value = Array.isArray(row[k]) ? row[k].join(",") : (row[k] ?? "");
  f[keys[1]].focus();
}
loaders.queues = async () => {
  await Promise.all([
    api.queue("/queues").then((r) => {
      queues = r.data;
      table("queues-table", [["queue_id", "编号"], ["name", "名称"], ["ticket_prefix", "号码前缀"], ["avg_service_minutes", "平均时长"],
        ["room_ids", "呼叫的检查室"], [(q) => q.paused ? "暂停" : "呼叫中", "状态"]], queues,
      (q) => [editButton(() => fillForm($("queue-form"), q, ["queue_id", "name", "ticket_prefix", "avg_service_minutes"]), `编辑 ${q.queue_id}`)]);
    }).catch((e) => failed("queues-table", e)),
    api.queue("/screens").then((r) => {
      screens = r.data;
      table("screens-table", [["screen_id", "编号"], [(s) => s.kind === "hall" ? "候诊大厅屏" : "诊室门口屏", "类型"],
        ["title", "标题"], ["room_ids", "检查室"]], screens,
      (x) => [editButton(() => fillForm($("screen-form"), x, ["screen_id", "title", "kind", "room_ids"]), `编辑 ${x.screen_id}`)]);
    }).catch((e) => failed("screens-table", e)),
  ]);
};
$("queue-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const f = ev.target, id = f.queue_id.value.trim(), was = queues.find((q) => q.queue_id === id) || {};
    const body = { name: f.name.value.trim(), ticket_prefix: f.ticket_prefix.value.trim(), avg_service_minutes: Number(f.avg_service_minutes.value) };
    if (was.policy) body.policy = was.policy;
    if (was.skip_rule) body.skip_rule = was.skip_rule;
    await api.queue(`/queues/${encodeURIComponent(id)}`, { method: "PUT", body });
    f.reset();
    await loaders.queues();
  })());
});
$("screen-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const f = ev.target, id = f.screen_id.value.trim(), was = screens.find((x) => x.screen_id === id);
    const body = { kind: f.kind.value, title: f.title.value.trim(),
      room_ids: f.room_ids.value.split(/[,，\s]+/).map((x) => x.trim()).filter(Boolean) };
    if (was) for (const k of ["layout", "on_time", "off_time", "mask_rule", "speech", "token"]) if (was[k] != null) body[k] = was[k];
    await api.queue(`/screens/${encodeURIComponent(id)}`, { method: "PUT", body });
    f.reset();
    await loaders.queues();
  })());
});
// ---- report templates (sections, typed fields, QC policy) and the department's phrases (reporting) ----
const SEVERITY = { "": "不检查", warning: "提醒", blocker: "阻止签发" };
const FIELD_TYPES = { text: "文本", choice: "选项", number: "数值", measurement: "测量值（带单位）", coded: "编码" };
const QC_CHECKS = { laterality: "左右侧矛盾", sex_organ: "器官与性别不符", free_text_units: "文中尺寸缺单位" };
const SECTIONS = { findings: "影像表现", impression: "诊断意见", recommendation: "建议" };
let template = null;
loaders.templates = async () => {
  await Promise.all([
    api.reporting("/templates").then((r) => table("templates-table", [["id", "编号"], ["name", "名称"], ["modality", "设备"], ["body_part", "部位"]],
      r.data, (t) => [editButton(() => show(api.reporting(`/templates/${encodeURIComponent(t.id)}`).then((full) => editTemplate(full, true))),
      `编辑 ${t.id}`)])).catch((e) => failed("templates-table", e)),
    api.reporting("/department-phrases").then((r) => table("phrases-table", [["label", "名称"], [(x) => SECTIONS[x.section] || x.section, "段落"],
      [(x) => x.modality || "全部", "设备"], ["text", "内容"]], r.data, (x) => {
      const b = el("button", { type: "button", class: "link", text: "删除", "aria-label": `删除常用词 ${x.label}` });
      b.addEventListener("click", () => show(api.reporting(`/department-phrases/${x.id}`, { method: "DELETE" }).then(loaders.templates)));
      return [b];
    })).catch((e) => failed("phrases-table", e)),
  ]);
};
// The editor: a template's sections and fields as editable tables; what they do not show (a coded field's
// allowed codes) is kept as it was, since the rows are the template's own objects.
let drawSections = null, drawFields = null;
function editTemplate(t, stored) {
  const def = t.definition;
  template = { ...t, definition: { sections: def.sections, fields: def.fields, qc: { ...def.qc } } };
  const f = $("template-form");
  f.hidden = false;
  for (const k of ["id", "name", "modality", "body_part"]) f[k].value = t[k] || "";
  f.id.readOnly = stored;
  $("template-heading").textContent = stored ? `编辑模板 ${t.id}` : "新建模板";
  drawSections = grid("template-sections", [["id", "编号"], ["title", "标题"], ["required", "为空时", "select", SEVERITY]],
    template.definition.sections, (i) => `段落${i + 1}`);
  drawFields = grid("template-fields", [["id", "编号"], ["label", "名称"], ["type", "类型", "select", FIELD_TYPES], ["section", "段落"],
    ["required", "为空时", "select", SEVERITY], ["options", "选项", "list"], ["unit", "单位"], ["unit_required", "缺单位时", "select", SEVERITY],
    ["laterality", "记录左右侧", "check"], ["critical_values", "属危急值的选项", "list"]], template.definition.fields, (i) => `字段${i + 1}`);
  $("template-qc").replaceChildren(...Object.entries(QC_CHECKS).map(([k, label]) => {
    const sel = input(template.definition.qc, k, "select", { warning: "提醒", blocker: "阻止签发" }, label);
    return el("label", {}, label + " ", sel);
  }));
  (stored ? f.name : f.id).focus();
}
const BLANK = { sections: [{ id: "findings", title: "影像表现", required: "blocker" }, { id: "impression", title: "诊断意见", required: "blocker" }],
  fields: [], qc: { laterality: "blocker", sex_organ: "blocker", free_text_units: "warning" } };
$("template-new").addEventListener("click", () => editTemplate({ definition: structuredClone(BLANK) }, false));
$("template-close").addEventListener("click", () => { $("template-form").hidden = true; template = null; });
$("section-add").addEventListener("click", () => {
  template.definition.sections.push({ id: "", title: "", required: null });
  drawSections();
});
$("field-add").addEventListener("click", () => {
  template.definition.fields.push({ id: `field${template.definition.fields.length + 1}`, label: "", type: "text", section: "findings",
    required: null, options: [], unit: null, unit_required: null, laterality: false, critical_values: [] });
  drawFields();
});
$("template-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const f = ev.target, id = f.id.value.trim();
    const body = { id, name: f.name.value.trim(), modality: f.modality.value.trim().toUpperCase() || null,
      body_part: f.body_part.value.trim().toUpperCase() || null, definition: template.definition };
    await api.reporting(`/templates/${encodeURIComponent(id)}`, { method: "PUT", body });
    f.hidden = true; template = null;
    $("template-status").textContent = `已保存模板 ${id}。`;
    await loaders.templates();
  })());
});
$("template-mrrt").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  show((async () => {
    ok();
    const t = await api.reporting("/templates/mrrt", { method: "POST", body: await file.text(), headers: { "Content-Type": "text/html" } });
    ev.target.value = "";
    await loaders.templates();
    editTemplate(await api.reporting(`/templates/${encodeURIComponent(t.id)}`), true);  // to set its modality and body part
  })());
});
$("phrase-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const f = ev.target, v = form(f);
    await api.reporting("/department-phrases", { method: "POST", body: { label: v.label.trim(), text: v.text.trim(), section: v.section,
      modality: v.modality.trim().toUpperCase() || null } });
    f.reset();
    await loaders.templates();
  })());
});

// Receivers: saved with the receiving service's PUT, which checks the destination against the outbound allow
// list; an existing one edited from its row keeps what the form does not show (acknowledgement identities...).
let reportReceivers = [], criticalReceivers = [];
const address = (host, port, url) => url || (host ? `${host}:${port}` : "");
loaders.receivers = async () => {
  await Promise.all([
    api.reporting("/receivers").then((r) => {
      reportReceivers = r.data;
      table("report-receivers-table", [["id", "编号"], ["name", "名称"], ["kind", "方式"], [(x) => address(x.host, x.port, x.url), "地址"],
        ["charset", "字符集"]], reportReceivers,
      (x) => [editButton(() => fillForm($("report-receiver-form"), x, ["id", "name", "kind", "host", "port", "url", "charset"]), `编辑 ${x.id}`)]);
    }).catch((e) => failed("report-receivers-table", e)),
    api.critical("/receivers").then((r) => {
      criticalReceivers = r.data;
      table("critical-receivers-table", [["receiver_id", "编号"], ["name", "名称"], ["department", "科室"],
        [(x) => address(x.hl7_host, x.hl7_port, x.fhir_base_url), "地址"]], criticalReceivers,
      (x) => [editButton(() => fillForm($("critical-receiver-form"), x, ["receiver_id", "name", "department", "hl7_host", "hl7_port", "fhir_base_url"]),
        `编辑 ${x.receiver_id}`)]);
    }).catch((e) => failed("critical-receivers-table", e)),
  ]);
};
// The form's values over the row's (empty fields as null, numbers as numbers).
function merged(row, f, keys, numbers) {
  const body = { ...(row || {}) };
  for (const k of keys) {
    const v = f[k].value.trim();
    body[k] = v === "" ? null : numbers.includes(k) ? Number(v) : v;
  }
  for (const [k, v] of Object.entries(body)) if (v === null) delete body[k];
  return body;
}
$("report-receiver-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const f = ev.target, id = f.id.value.trim();
    const body = merged(reportReceivers.find((x) => x.id === id), f, ["name", "kind", "host", "port", "url", "charset"], ["port"]);
    await api.reporting(`/receivers/${encodeURIComponent(id)}`, { method: "PUT", body });
    f.reset();
    await loaders.receivers();
  })());
});
$("critical-receiver-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const f = ev.target, id = f.receiver_id.value.trim();
    const body = merged(criticalReceivers.find((x) => x.receiver_id === id), f,
      ["name", "department", "hl7_host", "hl7_port", "fhir_base_url"], ["hl7_port"]);
    await api.critical(`/receivers/${encodeURIComponent(id)}`, { method: "PUT", body });
    f.reset();
    await loaders.receivers();
  })());
});

// ---- known peers of the protocol ports (each service that owns a port keeps its registry) -------------
const PEER_SERVICES = { worklist: "检查工作列表", print: "胶片打印", registration: "HIS 接口", "critical-values": "危急值回执" };
const PEER_KINDS = { modality: "检查设备", printer: "打印设备", his: "HIS", "clinician-system": "临床系统" };
const MODES = { enforce: "拒绝未登记的", "audit-only": "仅审计", off: "不检查" };
let peers = [];
loaders.peers = async () => {
  peers = [];
  const modes = [];
  await Promise.all(Object.entries(PEER_SERVICES).map(([prefix, label]) => ImagingShell.api(`/api/${prefix}`)("/admin/peers").then((r) => {
    peers.push(...r.data.map((x) => ({ ...x, service: prefix })));
    modes.push(`${label}：` + Object.entries(r.modes).map(([port, m]) => `${port} ${MODES[m] || m}`).join("，"));
  }).catch((e) => modes.push(`${label}：${e.text || e.message}`))));
  peers.sort((a, b) => (a.service + a.peer_id).localeCompare(b.service + b.peer_id));
  $("peer-modes").textContent = modes.sort().join("；");
  table("peers-table", [[(x) => PEER_SERVICES[x.service], "服务"], ["peer_id", "编号"], [(x) => PEER_KINDS[x.kind] || x.kind, "类型"], ["name", "名称"],
    [(x) => x.ae_title || [x.hl7_application, x.hl7_facility].filter(Boolean).join(" / "), "识别"], ["addresses", "来源地址"],
    [(x) => x.cert_sha256 ? "要求 TLS 证书" : "", "证书"], [(x) => x.active ? "启用" : "停用", "状态"]], peers, (x) => {
    const drop = el("button", { type: "button", class: "link", text: "删除", "aria-label": `删除对端 ${x.peer_id}` });
    drop.addEventListener("click", () => show(ImagingShell.api(`/api/${x.service}`)(`/admin/peers/${encodeURIComponent(x.peer_id)}`,
      { method: "DELETE" }).then(loaders.peers)));
    return [editButton(() => {
      const f = $("peer-form");
      fillForm(f, x, ["service", "peer_id", "kind", "name", "ae_title", "hl7_application", "hl7_facility", "addresses", "cert_sha256"]);
      f.active.checked = x.active;
    }, `编辑对端 ${x.peer_id}`), drop];
  });
};
$("peer-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const f = ev.target, v = form(f), id = v.peer_id.trim();
    const body = { kind: v.kind, name: v.name.trim(), addresses: v.addresses.split(/[,，\s]+/).filter(Boolean), active: f.active.checked };
    for (const k of ["ae_title", "hl7_application", "hl7_facility", "cert_sha256"]) body[k] = v[k].trim() || null;
    await ImagingShell.api(`/api/${v.service}`)(`/admin/peers/${encodeURIComponent(id)}`, { method: "PUT", body });
    f.reset();
    await loaders.peers();
  })());
});

// ---- critical values: the dictionary (edited, published as a new version) and the escalation chain ----
const CATEGORIES = { 1: "一类（立即）", 2: "二类", 3: "三类" };
let chain = [], dictionary = [], drawDictionary = null, drawChain = null;
loaders.critical = async () => {
  await Promise.all([
    api.critical("/dictionary").then((r) => {
      $("dictionary-version").textContent = `当前第 ${r.version} 版`;
      dictionary = r.items.map((x) => ({ ...x, category: String(x.category) }));
      drawDictionary = grid("dictionary-table", [["code", "代码"], ["name", "名称"], ["modalities", "设备（空为全部）", "list"],
        ["category", "分类", "select", CATEGORIES], ["notify_minutes", "通报时限（分钟）", "number", { min: "1" }],
        ["ack_minutes", "确认时限（分钟）", "number", { min: "1" }], ["requires_senior_confirmation", "需上级确认", "check"],
        ["active", "启用", "check"]], dictionary, (i) => `第${i + 1}项`);
    }).catch((e) => failed("dictionary-table", e)),
    api.critical("/dictionary/versions").then((r) => table("dictionary-versions", [["version", "版本"],
      [(v) => new Date(v.published_at).toLocaleString("zh-CN"), "发布时间"], ["published_by", "发布人"], ["items", "项目数"], ["note", "说明"]],
      r.data.slice().sort((a, b) => b.version - a.version))).catch((e) => failed("dictionary-versions", e)),
    api.critical("/escalation-chain").then((r) => {
      chain = r.steps.map((s) => ({ ...s }));
      drawChain = grid("chain-table", [["action", "动作", "select", CHAIN_ACTIONS], ["after_minutes", "分钟数", "number", { min: "1", step: "1" }]],
        chain, (i) => `第${i + 1}步`);
    }).catch((e) => failed("chain-table", e)),
  ]);
};
$("dictionary-add").addEventListener("click", () => {
  dictionary.push({ code: "", name: "", modalities: [], category: "1", notify_minutes: 10, ack_minutes: 15,
    requires_senior_confirmation: false, active: true });
  drawDictionary();
});
$("dictionary-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    const items = dictionary.map(({ version, ...x }) => ({ ...x, category: Number(x.category) }));
    await api.critical("/dictionary/versions", { method: "POST", body: { items, note: ev.target.note.value.trim() || null } });
    ev.target.note.value = "";
    await loaders.critical();
  })());
});
$("chain-add").addEventListener("click", () => { chain.push({ action: "repeat", after_minutes: 10 }); drawChain(); });
$("chain-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  show((async () => {
    ok();
    await api.critical("/escalation-chain", { method: "PUT", body: { steps: chain } });
    await loaders.critical();
  })());
});

ImagingShell.start({ page: "admin", main: "#admin", title: "系统管理", onReady: (me) => {
  if (!me.roles.includes("admin")) { $("forbidden").hidden = false; return; }
  $("workspace").hidden = false;
  const wanted = location.hash.slice(1);
  openTab(loaders[wanted] ? wanted : "starter");
} });
