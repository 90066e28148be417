// The observer page: one EventSource of snapshots, drawn with DOM nodes (no innerHTML of data).
"use strict";

const $ = (sel) => document.querySelector(sel);
let chaosAllowed = false;

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined || text === "" ? "-" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function clock(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString([], {hour12: false}) : "-";
}

function toast(text) {
  const el = $("#toast");
  el.textContent = text;
  el.classList.add("show");
  setTimeout(() => el.classList.remove("show"), 3500);
}

function showTraceback(title, text) {
  const dialog = $("#traceback");
  dialog.querySelector("pre").textContent = title + "\n\n" + (text || "(no traceback)");
  dialog.showModal();
}

async function fault(kind, target) {
  const ms = Number($("#delay-ms").value), forS = Number($("#fault-for").value);
  const extra = kind === "delay" ? ` (${ms} ms per message for ${forS} s)`
    : kind === "drop" ? ` (for ${forS} s)` : "";
  if (!window.confirm(`${kind} ${target}${extra}?`)) return;
  const response = await fetch("api/faults", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({kind, target, ms, for_s: forS}),
  });
  const body = await response.json();
  toast(body.text || body.error);
}

function faultButtons(row, target, kinds) {
  addFaultButtons(cell(row, "", "faults"), target, kinds);
}

function addFaultButtons(td, target, kinds) {
  td.textContent = "";
  for (const kind of kinds) {
    const button = document.createElement("button");
    button.className = "fault";
    button.textContent = kind;
    button.dataset.fault = kind;
    button.addEventListener("click", () => fault(kind, target));
    td.appendChild(button);
  }
}

const rows = new Map();  // path -> {row, cells}: rows are updated in place, never rebuilt
const COLUMNS = ["actor", "class", "status", "node", "pid", "restarts", "budget", "handled",
                 "rate", "queued", "cpu", "pss", "exit", "faults"];

function actorRow(a) {
  const row = document.createElement("tr");
  row.dataset.path = a.path;
  const cells = {};
  for (const name of COLUMNS) {
    const td = document.createElement("td");
    td.className = name;
    if (["pid", "restarts", "budget", "handled", "rate", "queued", "cpu", "pss"].includes(name)) {
      td.classList.add("num");
    }
    row.appendChild(td);
    cells[name] = td;
  }
  cells.exit.addEventListener("click", () => {
    const now = row.snapshot;
    if (now && now.last_exit) showTraceback(`${now.path}: ${now.last_exit}`, now.last_exit_traceback);
  });
  const entry = {row, cells, faults: null};
  rows.set(a.path, entry);
  return entry;
}

function put(td, value) {
  const text = value === null || value === undefined || value === "" ? "-" : String(value);
  if (td.textContent !== text) td.textContent = text;
}

function drawTree(actors) {
  const body = $("#tree tbody");
  const seen = new Set();
  let previous = null;
  for (const a of actors) {
    const {row, cells} = rows.get(a.path) || actorRow(a);
    row.snapshot = a;
    seen.add(a.path);
    const name = a.path.split("/").pop() || a.path;
    const pad = "\u00a0\u00a0".repeat(a.depth * 2);
    put(cells.actor, a.more ? `${pad}… ${a.more} more children`
                            : pad + (a.is_supervisor ? "▾ " : "• ") + name);
    cells.actor.title = a.path + (a.name ? ` (registered as ${a.name})` : "");
    put(cells.class, a.light_host ? `${a.actor_class} (light)` : a.actor_class);
    cells.class.title = a.light_host ? `a light actor in host ${a.light_host}` : "";
    if (!a.more) {
      put(cells.status, a.status);
      cells.status.className = `status badge-cell status-${a.status}`;
    }
    put(cells.node, a.node);
    put(cells.pid, a.pid);
    put(cells.restarts, a.more ? "" : a.restarts);
    put(cells.budget, a.restart_budget_left);
    put(cells.handled, a.handled_total);
    put(cells.rate, a.rate);
    put(cells.queued, a.queued);
    put(cells.cpu, a.cpu_percent);
    put(cells.pss, a.pss_bytes === null ? null : (a.pss_bytes / 1048576).toFixed(1));
    put(cells.exit, a.last_exit ? `${a.last_exit} at ${clock(a.last_exit_at)}` : "");
    cells.exit.className = a.last_exit ? `exit ${a.last_exit_kind}` : "exit-none";
    cells.exit.title = a.last_exit ? "show the traceback" : "";
    const faultable = a.depth > 0 && !a.more && a.status === "running";
    if (faultable && !cells.faults.firstChild) {
      addFaultButtons(cells.faults, a.path, ["crash", "kill", "delay", "drop"]);
    } else if (!faultable && cells.faults.firstChild) {
      cells.faults.textContent = "";
    }
    const expected = previous ? previous.nextSibling : body.firstChild;
    if (expected !== row) body.insertBefore(row, expected);
    previous = row;
  }
  for (const [path, entry] of rows) {
    if (!seen.has(path)) { entry.row.remove(); rows.delete(path); }
  }
}

function drawNodes(nodes, system) {
  const body = $("#nodes tbody");
  body.textContent = "";
  for (const n of nodes) {
    const row = document.createElement("tr");
    cell(row, n.name);
    const status = cell(row, "");
    const badge = document.createElement("span");
    badge.className = `badge status-${n.status}`;
    badge.textContent = n.status === "lost" ? `lost at ${clock(n.lost_at)}` : n.status;
    status.appendChild(badge);
    cell(row, Object.entries(n.capabilities).map(([k, v]) => `${k}=${v}`).join(" "));
    if (n.status === "up") faultButtons(row, n.name, ["kill-node"]); else cell(row, "", "faults");
    body.appendChild(row);
  }
  if (!nodes.length) {
    const row = document.createElement("tr");
    cell(row, `this node only (${system})`).colSpan = 4;
    body.appendChild(row);
  }
}

function drawLights(hosts) {
  const body = $("#lights tbody");
  body.textContent = "";
  for (const h of hosts) {
    const row = document.createElement("tr");
    cell(row, h.host, "actor");
    cell(row, h.actors, "num");
    body.appendChild(row);
  }
  if (!hosts.length) {
    const row = document.createElement("tr");
    cell(row, "no light actors").colSpan = 2;
    body.appendChild(row);
  }
}

function drawTimeline(events) {
  const list = $("#timeline");
  list.textContent = "";
  for (const e of events) {
    const item = document.createElement("li");
    item.className = `k-${e.kind}`;
    for (const [cls, text] of [["when", clock(e.at)], ["kind", e.kind], ["target", e.target]]) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      item.appendChild(span);
    }
    item.appendChild(document.createTextNode(" " + e.text));
    if (e.traceback) {
      item.style.cursor = "pointer";
      item.title = "show the traceback";
      item.addEventListener("click", () => showTraceback(`${e.target}: ${e.text}`, e.traceback));
    }
    list.appendChild(item);
  }
}

function draw(snapshot) {
  chaosAllowed = snapshot.chaos_allowed;
  document.body.classList.toggle("chaos", chaosAllowed);
  const chaos = $("#chaos");
  chaos.textContent = chaosAllowed ? "faults allowed" : "faults off";
  chaos.className = chaosAllowed ? "badge bad" : "badge off";
  $("#system").textContent = snapshot.system;
  $("#updated").textContent = `updated ${clock(snapshot.at)}`;
  drawTree(snapshot.actors);
  drawNodes(snapshot.nodes, snapshot.system);
  drawLights(snapshot.light_hosts);
  drawTimeline(snapshot.timeline);
}

function connect() {
  const events = new EventSource("api/events");
  const live = $("#live");
  events.addEventListener("open", () => { live.textContent = "live"; live.className = "badge on"; });
  events.addEventListener("error", () => {
    live.textContent = "reconnecting…";
    live.className = "badge bad";
  });
  events.addEventListener("snapshot", (message) => draw(JSON.parse(message.data)));
}

connect();
