// The smart home's dashboard: rooms, each sensor's latest values with unit and age, the house
// mode with a switch, recent alerts, and a history chart drawn as plain SVG from the JSON API.
"use strict";

const state = { sensors: [], chart: null, hours: 1, mode: null };

async function getJson(path, options) {
  const answer = await fetch(path, options);
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || answer.statusText);
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function age(seconds) {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function format(metric, value) {
  if (metric === "motion") return value ? "motion" : "still";
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function renderRooms() {
  const now = Date.now() / 1000;
  const byRoom = new Map();
  for (const s of state.sensors) {
    if (!byRoom.has(s.room)) byRoom.set(s.room, []);
    byRoom.get(s.room).push(s);
  }
  const rooms = document.getElementById("rooms");
  rooms.replaceChildren();
  for (const [room, sensors] of [...byRoom.entries()].sort()) {
    const title = el("h2", { class: "room-title", title: "chart of the room's temperatures",
                             onclick: () => showRoomChart(room, sensors) }, room);
    const box = el("div", { class: "room", "data-room": room }, title);
    for (const s of sensors) {
      const line = el("div", { class: "sensor", "data-sensor": s.sensor_id },
                      el("div", { class: "name" }, `${s.sensor_id} `,
                         el("span", { class: "muted" }, s.kind)));
      const values = el("div", {});
      if (!s.latest) values.append(el("span", { class: "muted" }, "no reading yet"));
      for (const [metric, unit] of Object.entries(s.metrics)) {
        if (!s.latest) break;
        const v = s.latest[metric];
        values.append(el("span", { class: "value", title: `chart of ${metric}`,
                                   "data-metric": metric,
                                   onclick: () => showChart(s, metric) },
                         metric === "motion" ? format(metric, v)
                           : `${metric} ${format(metric, v)}${unit ? " " + unit : ""}`));
      }
      if (s.latest) {
        const seconds = now - s.latest.received_at;
        values.append(el("span", { class: "age" + (seconds > 60 ? " stale" : " muted") },
                         age(seconds)));
      }
      line.append(values);
      box.append(line);
    }
    rooms.append(box);
  }
}

async function refreshSensors() {
  const answer = await getJson("sensors");
  state.sensors = answer.sensors;
  renderRooms();
  document.getElementById("updated").textContent =
    "updated " + new Date().toLocaleTimeString();
}

async function refreshAlerts() {
  const open = await getJson("alerts/open");
  const openList = document.getElementById("open-alerts");
  openList.replaceChildren();
  if (!open.alerts.length) openList.append(el("li", { class: "muted" }, "none"));
  for (const a of open.alerts) {
    openList.append(el("li", { class: "open-alert", "data-rule": a.rule }, a.text));
  }
  const answer = await getJson("alerts?limit=50");
  const list = document.getElementById("alerts");
  list.replaceChildren();
  if (!answer.alerts.length) list.append(el("li", { class: "muted" }, "none"));
  for (const a of answer.alerts) {
    list.append(el("li", { class: "alert", "data-rule": a.rule },
                   `${new Date(a.ts * 1000).toLocaleString()}: ${a.text}`));
  }
}

function renderMode(mode) {
  state.mode = mode;
  document.getElementById("mode").textContent = mode;
  const button = document.getElementById("mode-switch");
  button.textContent = mode === "home" ? "switch to away" : "switch to home";
  button.disabled = false;
}

async function refreshMode() { renderMode((await getJson("mode")).mode); }

async function switchMode() {
  const button = document.getElementById("mode-switch");
  button.disabled = true;
  const wanted = state.mode === "home" ? "away" : "home";
  try {
    const answer = await getJson("mode", { method: "POST", body: JSON.stringify({ mode: wanted }),
                                           headers: { "Content-Type": "application/json" } });
    renderMode(answer.mode);
  } catch (err) {
    button.disabled = false;
    alert(`could not switch: ${err.message}`);
  }
}

function showChart(sensor, metric) {
  state.chart = { sensor, metric };
  drawChart();
}

function showRoomChart(room, sensors) {
  const withTemperature = sensors.filter(s => "temperature" in s.metrics);
  const first = withTemperature[0] || sensors[0];
  const metric = withTemperature.length ? "temperature" : Object.keys(first.metrics)[0];
  state.chart = { room, sensors: withTemperature.length ? withTemperature : [first], metric };
  drawChart();
}

function rangeName() {
  return state.hours === 1 ? "last hour" : state.hours === 24 ? "last 24 h" : "last 7 days";
}

async function drawChart() {
  if (!state.chart) return;
  if (state.chart.room) return drawRoomChart();
  const { sensor, metric } = state.chart;
  const box = document.getElementById("chart");
  const data = await getJson(`sensors/${encodeURIComponent(sensor.sensor_id)}/series?metric=` +
                             `${metric}&hours=${state.hours}`);
  const unit = data.unit ? ` (${data.unit})` : "";
  document.getElementById("chart-title").textContent =
    `${sensor.sensor_id} (${sensor.room}): ${metric}${unit}, ${rangeName()}`;
  box.replaceChildren(chartSvg(data));
}

async function drawRoomChart() {
  const { room, sensors, metric } = state.chart;
  const series = await Promise.all(sensors.map(s => getJson(
    `sensors/${encodeURIComponent(s.sensor_id)}/series?metric=${metric}&hours=${state.hours}`)));
  const unit = series[0] && series[0].unit ? ` (${series[0].unit})` : "";
  document.getElementById("chart-title").textContent =
    `room ${room}: ${metric}${unit}, ${rangeName()}`;
  const merged = { ...series[0], points: series.flatMap(d => d.points),
                   limits: [...new Set(series.flatMap(d => d.limits))] };
  const root = chartSvg(merged, series);
  document.getElementById("chart").replaceChildren(root);
}

const COLOURS = ["#0b5394", "#e69138", "#6aa84f", "#674ea7", "#cc0000", "#45818e"];

function chartSvg(data, overlay) {
  const W = 800, H = 260, L = 56, R = 12, T = 12, B = 28;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
                            "aria-label": `${data.metric} chart`,
                            "data-points": String(data.points.length) });
  const values = data.points.flatMap(p => [p[2], p[3]]).concat(data.limits);
  if (!data.points.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "tick" },
                    "no readings in this range"));
    return root;
  }
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const x = t => L + (t - data.since) / (data.until - data.since) * (W - L - R);
  const y = v => T + (hi - v) / (hi - lo) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    root.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" },
                    format(data.metric === "motion" ? "x" : data.metric, v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = data.since + (data.until - data.since) * i / 4;
    const d = new Date(t * 1000);
    const label = data.until - data.since > 2 * 86400
      ? d.toLocaleDateString([], { weekday: "short", hour: "2-digit" })
      : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
    root.append(svg("text", { x: x(t), y: H - 8, "text-anchor": anchor, class: "tick" }, label));
  }
  if (overlay) {
    overlay.forEach((d, i) => {
      const line = d.points.map(p => `${x(p[0])},${y(p[1])}`).join(" ");
      const colour = COLOURS[i % COLOURS.length];
      root.append(svg("polyline", { points: line, class: "mean", style: `stroke: ${colour}` }));
      if (d.points.length < 40) {
        for (const p of d.points) {
          root.append(svg("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, style: `fill: ${colour}` }));
        }
      }
      root.append(svg("text", { x: L + 8, y: T + 14 + 14 * i, class: "tick",
                                style: `fill: ${COLOURS[i % COLOURS.length]}` }, d.sensor_id));
    });
    drawLimits(root, data, L, R, W, y);
    return root;
  }
  const pts = data.points.map(p => [x(p[0]), y(p[1]), y(p[2]), y(p[3])]);
  const band = pts.map(p => `${p[0]},${p[3]}`).concat(pts.slice().reverse().map(p => `${p[0]},${p[2]}`));
  root.append(svg("polygon", { points: band.join(" "), class: "band" }));
  root.append(svg("polyline", { points: pts.map(p => `${p[0]},${p[1]}`).join(" "), class: "mean" }));
  if (pts.length < 40) for (const p of pts) root.append(svg("circle", { cx: p[0], cy: p[1], r: 2.5, class: "point" }));
  drawLimits(root, data, L, R, W, y);
  return root;
}

function drawLimits(root, data, L, R, W, y) {
  for (const limit of data.limits) {
    root.append(svg("line", { x1: L, x2: W - R, y1: y(limit), y2: y(limit), class: "limit" }));
    root.append(svg("text", { x: W - R - 4, y: y(limit) - 4, "text-anchor": "end",
                              class: "limit-label" },
                    `alert limit ${limit}${data.unit ? " " + data.unit : ""}`));
  }
}

function every(seconds, fn) {
  const run = () => fn().catch(err => {
    document.getElementById("updated").textContent = `not updated: ${err.message}`;
  });
  run();
  setInterval(run, seconds * 1000);
}

document.getElementById("mode-switch").onclick = switchMode;
for (const button of document.querySelectorAll(".range")) {
  button.onclick = () => {
    state.hours = Number(button.dataset.hours);
    for (const b of document.querySelectorAll(".range")) b.classList.toggle("on", b === button);
    drawChart().catch(() => {});
  };
}
every(5, refreshSensors);
every(5, refreshAlerts);
every(10, refreshMode);
every(30, drawChart);
