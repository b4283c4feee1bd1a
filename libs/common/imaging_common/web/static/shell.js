// The staff pages' shell: navigation bar, user area with logout, sign-in form, API calls with silent
// token renewal, idle timeout, and the home page's task list. One copy for every page.
//
//   ImagingShell.start({ page: "worklist", main: "#app", onReady: (me) => load() });
//   const api = ImagingShell.api("/api/worklist");  const rows = await api("/items?date=...");
//
// Tokens: the refresh token lives only in an HttpOnly cookie on /api/registration/auth (no script reads
// it). The access token (10 minutes) is kept in this tab's sessionStorage: a page change within the tab
// keeps it, so moving between pages does not rotate the refresh token every time (two tabs rotating at
// once would present one token twice, which revokes the session as a theft); it is renewed with the
// cookie before it expires and dropped at logout, expiry or idle timeout.
// Leaving a session (logout, expiry, idle, logout in another tab) empties the page first, then reloads
// it to the sign-in form: no patient data stays on the screen or in the page's memory.
"use strict";
(function () {
  const AUTH = "/api/registration/auth";
  const TOKEN = "imaging.access_token";
  const IDLE = "imaging.idle_seconds";
  const NOTICE = "imaging.notice";
  const ACTIVITY = "imaging.last_activity";  // localStorage: a time only, shared by the tabs
  const SIGNED_IN = "imaging.signed_in";     // localStorage: "a cookie may be there", so a page opened
                                             // without one does not ask for a renewal bound to fail
  const ROLE_NAMES = { clerk: "登记员", technologist: "技师", nurse: "护士", radiologist: "诊断医师",
    "senior-radiologist": "审核医师", clinician: "临床医生", admin: "管理员", "it-ops": "信息科运维" };
  // Every staff page, the roles its API admits and what each role does there (the home page's tasks).
  const PAGES = [
    { id: "registration", href: "/ui/registration/", name: "登记台", tasks: {
      clerk: ["查找、登记病人（核验证件）", "开检查申请单并打印", "处理疑似重复与资料变更"],
      nurse: ["查找、登记病人（核验证件）"], admin: ["登记病人、开申请单、合并重复档案"] } },
    { id: "queue", href: "/ui/queue/terminal", name: "呼叫终端", tasks: {
      clerk: ["扫码到检签到"], nurse: ["到检签到、顺呼/选呼、过号、转诊"],
      technologist: ["叫号、开始与完成检查"], admin: ["管理候诊队列"] } },
    { id: "scheduling", href: "/ui/scheduling/", name: "预约排程", tasks: {
      clerk: ["按院区、检查室查看日/周排程", "预约、改约（可拖动）、取消预约并打印回执"],
      nurse: ["预约、改约、取消预约并打印回执"], clinician: ["为申请单预约检查"],
      technologist: ["查看检查室排程"], admin: ["查看与调整排程"] } },
    { id: "worklist", href: "/ui/worklist/", name: "检查工作列表", tasks: {
      technologist: ["按检查室查看当日检查"], nurse: ["查看当日检查与提示"], radiologist: ["查看当日检查"],
      admin: ["查看各检查室工作列表"] } },
    { id: "reporting", href: "/ui/reporting/", name: "诊断报告", tasks: {
      radiologist: ["书写报告（模板、常用词、质控）", "初诊签名、提交会诊", "上报危急值"],
      "senior-radiologist": ["审核签发报告", "审批报告修改申请"], admin: ["查看报告"] } },
    { id: "critical-values", href: "/ui/critical-values/", name: "危急值", tasks: {
      radiologist: ["跟踪危急值通报与确认"], "senior-radiologist": ["跟踪危急值", "危急值质控统计"],
      clinician: ["查看并确认本科室危急值"], nurse: ["跟踪危急值，电话通知"], admin: ["危急值看板与质控统计"] } },
    { id: "print", href: "/ui/print/review", name: "胶片匹配", tasks: {
      technologist: ["人工匹配未识别的胶片"], clerk: ["人工匹配未识别的胶片"], admin: ["人工匹配胶片"] } },
    { id: "dashboard", href: "/ui/dashboard/", name: "运营看板", tasks: {
      "senior-radiologist": ["科室检查量、各环节时间、阳性率与符合率", "设备使用率与设备状态", "导出统计报表（Excel）"],
      admin: ["运营统计与导出", "设备状态与维护记录", "大屏地址与令牌"] } },
    { id: "qc", href: "/ui/dashboard/qc/", name: "质控", tasks: {
      technologist: ["影像质控评级（甲乙丙丁）", "申请单质控"], radiologist: ["影像、申请单与报告质控评阅"],
      "senior-radiologist": ["报告质控评分与双人复核", "抽样比例与按人按月统计"] } },
    { id: "admin", href: "/ui/admin/", name: "系统管理", tasks: {
      admin: ["载入初始配置", "用户与角色、检查室与工作时间、检查项目目录", "队列与屏幕、报告模板、接收方、危急值字典与升级链"] } },
  ];

  const $ = (sel, root) => (root || document).querySelector(sel);
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("imaging-session") : null;
  let options = {}, me = null, renewTimer = null, idleTimer = null, leaving = false, refreshing = null;

  // Building the page's elements: text only through textContent, never as markup (patient data).
  // Pages use these too (ImagingShell.el, ImagingShell.text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v == null ? "" : String(v);
      else if (k === "class") { if (v) e.className = v; }
      else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v);
    }
    e.append(...children);
    return e;
  }
  const text = (tag, value, cls) => el(tag, { text: value, class: cls || null });

  // ---- tokens ---------------------------------------------------------------------------------
  function claims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(part + "===".slice((part.length + 3) % 4)), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) { return null; }
  }
  function holds() {
    const c = claims(sessionStorage.getItem(TOKEN) || "");
    return !!c && c.exp * 1000 > Date.now();
  }
  function stored() {
    const t = sessionStorage.getItem(TOKEN);
    const c = t && claims(t);
    return c && c.exp * 1000 > Date.now() + 5000 ? t : null;
  }
  function keep(body) {
    localStorage.setItem(SIGNED_IN, "1");
    sessionStorage.setItem(TOKEN, body.access_token);
    if (body.idle_timeout_seconds) sessionStorage.setItem(IDLE, String(body.idle_timeout_seconds));
  }

  // Renew with the cookie; one renewal at a time in this tab, and across tabs where the browser can
  // lock (a secure context), so two tabs never present the same refresh token.
  // Resolves true (renewed), false (refused: the session is over) or null (no answer: try again later).
  function refresh() {
    if (refreshing) return refreshing;
    const run = async () => {
      try {
        const r = await fetch(AUTH + "/refresh", { method: "POST", credentials: "same-origin",
                                                   headers: { "Accept-Language": "zh-CN" } });
        if (r.status === 401 || r.status === 404) { localStorage.removeItem(SIGNED_IN); return false; }
        if (!r.ok) return null;
        const body = await r.json();
        // A renewal answered after the page began to leave (logout, expiry) is dropped: its session is
        // being ended, and a token kept now would be the reloaded page's, refused with 401s.
        if (leaving) return false;
        keep(body);
        scheduleRenewal();
        return true;
      } catch (e) { return null; }
    };
    const locked = navigator.locks ? navigator.locks.request("imaging-refresh", run) : run();
    refreshing = locked.finally(() => { refreshing = null; });
    return refreshing;
  }
  // Renew before the token runs out; with no answer (the network or the server away for a moment) try
  // again every 5 s while the token still holds; refused: the session is over.
  function renewIn(delay) {
    clearTimeout(renewTimer);
    renewTimer = setTimeout(async () => {
      const renewed = await refresh();
      if (renewed === false || (renewed === null && !holds())) expire();
      else if (renewed === null) renewIn(5000);
    }, delay);
  }
  function scheduleRenewal() {
    const c = claims(sessionStorage.getItem(TOKEN) || "");
    if (!c) return;
    const left = c.exp * 1000 - Date.now();
    renewIn(Math.max(1000, Math.min(left - 30000, left * 0.8)));
  }
  async function token() {
    return stored() || (localStorage.getItem(SIGNED_IN) && (await refresh()) ? stored() : null);
  }

  // ---- leaving a session ----------------------------------------------------------------------
  function wipe(notice) {
    leaving = true;
    clearTimeout(renewTimer); clearInterval(idleTimer);
    sessionStorage.removeItem(TOKEN);
    localStorage.removeItem(SIGNED_IN);
    document.body.replaceChildren();  // patient data leaves the screen before anything else happens
    document.title = "影像中心";
    if (notice) sessionStorage.setItem(NOTICE, notice);
  }
  function reload() { location.replace(location.pathname + location.search + location.hash); }

  function expire(notice) {
    if (leaving) return;
    wipe(notice || "登录已过期，请重新登录");
    reload();
  }

  async function logout(notice) {
    if (leaving) return;
    const t = await token().catch(() => null);  // a fresh one, so the revocation is honoured
    wipe(notice);
    if (channel) channel.postMessage("logout");
    if (t) {
      try {
        await fetch(AUTH + "/logout", { method: "POST", keepalive: true, credentials: "same-origin",
                                        headers: { Authorization: "Bearer " + t } });
      } catch (e) { /* offline: the session still ends at its idle timeout */ }
    }
    reload();
  }
  if (channel) channel.onmessage = (m) => { if (m.data === "logout" && !leaving) { wipe("已在其他窗口退出登录"); reload(); } };

  // ---- idle timeout ---------------------------------------------------------------------------
  let lastMark = 0;
  function active() {
    const now = Date.now();
    if (now - lastMark > 2000) { lastMark = now; localStorage.setItem(ACTIVITY, String(now)); }
  }
  function idleOver() {
    const limit = Number(sessionStorage.getItem(IDLE) || 1800) * 1000;
    const last = Number(localStorage.getItem(ACTIVITY) || 0);
    return last > 0 && Date.now() - last > limit;
  }
  function watchIdle() {
    for (const kind of ["keydown", "pointerdown", "wheel", "touchstart"]) {
      document.addEventListener(kind, active, { passive: true, capture: true });
    }
    clearInterval(idleTimer);
    idleTimer = setInterval(() => { if (idleOver()) logout("长时间未操作，已自动退出登录"); }, 5000);
  }

  // ---- API calls ------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      let detail = body && typeof body === "object"
        ? (body.detail || body.title) : (typeof body === "string" && body.length < 200 ? body : "");
      if (body && Array.isArray(body.errors) && body.errors.length) {
        detail += "：" + body.errors.map((e) => (e && (e.msg || e.message)) || JSON.stringify(e)).join("；");
      }
      super(detail || (status ? "请求失败" : "无法连接服务器"));
      this.status = status; this.code = body && body.code; this.body = body;
      // What a page shows: the status for staff reporting a problem, then the Chinese message.
      this.text = status ? `错误 ${status}：${this.message}` : this.message;
    }
  }

  function api(base) {
    return async function call(path, init) {
      const o = init || {};
      for (let attempt = 0; ; attempt++) {
        const t = await token();
        if (!t) { expire(); throw new ApiError(401, { detail: "登录已过期，请重新登录" }); }
        const headers = { "Accept-Language": "zh-CN", Authorization: "Bearer " + t, ...(o.headers || {}) };
        let body = o.body;
        if (body !== undefined && typeof body !== "string" && !(body instanceof Blob) && !(body instanceof FormData)) {
          body = JSON.stringify(body);
        }
        if (typeof body === "string" && !headers["Content-Type"]) headers["Content-Type"] = "application/json";
        let r;
        try {
          r = await fetch(base + path, { method: o.method || "GET", headers, body });
        } catch (e) { throw new ApiError(0, null); }
        if (r.status === 401) {
          // Revoked or expired before its time: one renewal, then the session is over.
          if (attempt === 0 && (await refresh())) continue;
          expire();
          throw new ApiError(401, await r.json().catch(() => null));
        }
        if (o.raw && r.ok) return r;
        const type = r.headers.get("content-type") || "";
        const data = r.status === 204 ? null : type.includes("json") ? await r.json().catch(() => null) : await r.text();
        if (!r.ok) throw new ApiError(r.status, data);
        return data;
      }
    };
  }

  // ---- the bar, the sign-in form, the home page -------------------------------------------------
  function pagesFor(roles) {
    return PAGES.filter((p) => roles.some((r) => p.tasks[r]) || roles.includes("admin"));
  }

  function buildBar() {
    const nav = el("nav", { "aria-label": "页面" });
    const user = el("div", { class: "user", hidden: "" },
      el("span", { id: "whoami" }), el("span", { class: "roles", id: "my-roles" }),
      el("button", { type: "button", id: "logout", text: "退出登录" }));
    const bar = el("header", { class: "shell-bar" },
      el("a", { class: "brand", href: "/" }, el("img", { src: icon(), alt: "" }), "影像中心"), nav, user);
    document.body.prepend(bar);
    $("#logout", bar).addEventListener("click", () => logout());
    return bar;
  }

  function icon() {
    const link = document.querySelector("link[rel=icon]");
    return link ? link.getAttribute("href") : "";
  }

  function fillBar(bar) {
    const nav = $("nav", bar);
    nav.replaceChildren(el("a", { href: "/", "aria-current": options.page === "home" ? "page" : null, text: "首页" }),
      ...pagesFor(me.roles).map((p) => el("a", { href: p.href, "data-page": p.id,
                                                 "aria-current": p.id === options.page ? "page" : null, text: p.name })));
    $("#whoami", bar).textContent = me.name || me.username;
    $("#my-roles", bar).textContent = me.roles.map((r) => ROLE_NAMES[r] || r).join("、");
    $(".user", bar).hidden = false;
  }

  function buildLogin(bar) {
    const form = el("form", { id: "login", class: "card login", autocomplete: "off", hidden: "" },
      el("h1", { text: "影像中心 · 登录" + (options.title ? " · " + options.title : "") }),
      el("label", { text: "用户名 " }, el("input", { id: "login-username", name: "username", required: "",
                                                    autocomplete: "username" })),
      el("label", { text: "密码 " }, el("input", { id: "login-password", name: "password", type: "password", required: "",
                                                  autocomplete: "current-password" })),
      el("label", { text: "动态验证码 " }, el("input", { id: "login-totp", name: "totp", inputmode: "numeric", required: "",
        pattern: "[0-9]{6}", maxlength: "6", placeholder: "6位数字", autocomplete: "one-time-code" })),
      el("button", { type: "submit", id: "login-submit", text: "登录" }),
      el("p", { class: "error", id: "login-error", role: "alert" }));
    bar.after(form);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      $("#login-error").textContent = "";
      $("#login-submit").disabled = true;
      try {
        const r = await fetch(AUTH + "/login", { method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "Accept-Language": "zh-CN" },
          body: JSON.stringify({ username: f.get("username"), password: f.get("password"), totp: f.get("totp"),
                                 refresh_in: "cookie" }) });
        const body = await r.json().catch(() => null);
        if (!r.ok) throw new ApiError(r.status, body);
        keep(body);
        form.reset();
        await enter();
      } catch (e) {
        $("#login-error").textContent = e instanceof ApiError ? e.message : "无法连接服务器";
      } finally { $("#login-submit").disabled = false; }
    });
    return form;
  }

  function showLogin() {
    const main = $(options.main);
    if (main) main.hidden = true;
    $("#login").hidden = false;
    $("#login-error").textContent = sessionStorage.getItem(NOTICE) || "";
    sessionStorage.removeItem(NOTICE);
    $("#login-username").focus();
  }

  async function enter() {
    const c = claims(sessionStorage.getItem(TOKEN));
    me = { user_id: c.sub, username: c.username, name: c.name, roles: c.roles || [] };
    active();
    fillBar($(".shell-bar"));
    $("#login").hidden = true;
    const main = $(options.main);
    if (main) main.hidden = false;
    scheduleRenewal();
    watchIdle();
    if (options.page === "home") renderHome();
    if (options.onReady) await options.onReady(me);
  }

  function renderHome() {
    const main = $(options.main);
    const mine = pagesFor(me.roles);
    main.replaceChildren(el("h1", { text: `${me.name || me.username}，您好` }),
      el("p", { class: "muted", text: "您的角色：" + me.roles.map((r) => ROLE_NAMES[r] || r).join("、") +
        "。以下是您可以办理的工作：" }),
      mine.length ? el("div", { class: "tasks" }, ...mine.map((p) => {
        const tasks = me.roles.flatMap((r) => p.tasks[r] || []);
        return el("section", { class: "card", "data-page": p.id },
          el("h2", {}, el("a", { href: p.href, text: p.name })),
          el("ul", {}, ...[...new Set(tasks.length ? tasks : p.tasks.admin)].map((t) => el("li", { text: t }))));
      })) : el("p", { class: "card", text: "您的角色没有需要在工作站办理的页面（接口文档：/api/registration/docs）。" }));
  }

  async function start(opts) {
    options = { main: "#app", ...opts };
    const bar = buildBar();
    buildLogin(bar);
    if (idleOver() && (await token())) {
      // Idle in every tab for longer than allowed: end the session on the server too, then sign in.
      await logout("长时间未操作，已自动退出登录");
      return;
    }
    if (await token()) await enter(); else showLogin();
  }

  window.ImagingShell = { start, api, logout, expire, ApiError, ROLE_NAMES, el, text,
    get me() { return me; } };
})();
