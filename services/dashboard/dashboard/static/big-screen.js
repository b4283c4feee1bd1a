// The wall screen: no login; the screen id and token come from its URL (?screen=…&token=…) and go
// only to the WebSocket, which sends today's figures (names masked) every few seconds.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const STATE = { online: "在线", idle: "空闲", in_exam: "检查中", unreachable: "离线", unknown: "未知" };
  const params = new URLSearchParams(location.search);
  let chart = null, retry = 1000;

  function row(cells, cls) {
    const tr = document.createElement("tr");
    cells.forEach((c, i) => { const td = document.createElement("td"); td.textContent = c == null ? "" : String(c);
      if (cls && i === 1) td.className = cls; tr.append(td); });
    return tr;
  }
  function show(s) {
    $("flow").replaceChildren(...s.flow.map((f) => row([f.modality, f.booked, f.arrived, f.in_exam, f.completed, f.reported])));
    $("critical").textContent = s.open_critical;
    $("under-way").replaceChildren(...s.under_way.map((u) => row([u.room, u.modality, u.name])));
    $("devices").replaceChildren(...s.devices.map((d) => row([d.name, STATE[d.state] || d.state, d.today_exams], "state-" + d.state)));
    const labels = s.flow.map((f) => f.modality);
    const data = { labels, datasets: [{ label: "完成", data: s.flow.map((f) => f.completed), backgroundColor: "#6bff9e" },
      { label: "检查中", data: s.flow.map((f) => f.in_exam), backgroundColor: "#ffd166" },
      { label: "到检", data: s.flow.map((f) => f.arrived), backgroundColor: "#7fc4ff" }] };
    if (chart) { chart.data = data; chart.update("none"); }
    else chart = new Chart($("flow-chart"), { type: "bar", data, options: { animation: false, maintainAspectRatio: false,
      plugins: { legend: { labels: { color: "#e8f1ff", font: { size: 20 } } } },
      scales: { x: { ticks: { color: "#e8f1ff", font: { size: 20 } } }, y: { ticks: { color: "#e8f1ff" } } } } });
  }
  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ui/dashboard/big-screen/ws?" +
      new URLSearchParams({ screen: params.get("screen") || "", token: params.get("token") || "" });
    const ws = new WebSocket(url);
    ws.onopen = () => { retry = 1000; $("status").textContent = "已连接"; };
    ws.onmessage = (m) => { show(JSON.parse(m.data)); $("status").textContent = "更新于 " + new Date().toLocaleTimeString("zh-CN"); };
    ws.onclose = (e) => {
      $("status").textContent = e.code === 4403 ? "屏幕未授权：请管理员检查屏幕地址" : "连接中断，重连中…";
      if (e.code !== 4403) { setTimeout(connect, retry); retry = Math.min(retry * 2, 30000); }
    };
  }
  setInterval(() => { $("clock").textContent = new Date().toLocaleString("zh-CN", { hour12: false }); }, 1000);
  connect();
})();
