// The browser client: written from docs/systems/game-protocol.md alone. The lobby over HTTP
// (JSON), the game over a WebSocket whose binary frames are the game's datagrams (msgpack).
// window.game exposes the client's state for tests and the curious.
"use strict";

const K = { JOIN: 1, INPUT: 2, LEAVE: 3, WELCOME: 11, SNAPSHOT: 12, REJOIN: 13, REJECT: 14,
            GAME_OVER: 15 };
const REJECT_BAD_TOKEN = 1, REJECT_UNKNOWN_ROOM = 2, REJECT_NOT_IN_ROOM = 3, REJECT_SUPERSEDED = 4;
const FRAME_MS = 1000 / 60, SILENCE_MS = 1000, JOIN_RETRY_MS = 500, JOIN_GIVE_UP_MS = 5000;

const game = window.game = {
  state: "lobby", token: "", playerId: 0, name: "", roomId: "", server: "", conn: 0, seq: 0,
  arena: 1000, tick: 0, endsAt: 0, coins: [], players: [], names: {}, snapshots: 0,
  heardAt: 0, joinedAt: 0, joinSentAt: 0, lastScores: null, spectating: "", log: [],
};
const keys = new Set();
let ws = null;
const $ = (id) => document.getElementById(id);

function note(text) {
  $("status").textContent = text;
  game.log.push(text);
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  for (;;) {
    const response = await fetch(path, options);
    const json = await response.json().catch(() => ({}));
    if (response.status === 429) {  // over a lobby limit: wait as told
      const wait = Number(response.headers.get("Retry-After") || "1");
      note(`slow down: ${json.error || "too many requests"} (${wait} s)`);
      await sleep(wait * 1000);
      continue;
    }
    return { status: response.status, json };
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- lobby ----------------------------------------------------------------------------------

async function login(register) {
  const credentials = { name: $("name").value, password: $("password").value };
  if (register) {
    const made = await api("POST", "/accounts", credentials);
    if (made.status !== 200 && made.status !== 409) { note(made.json.error || "cannot register"); return; }
  }
  const answer = await api("POST", "/login", credentials);
  if (answer.status !== 200) { note(answer.json.error || "cannot log in"); return; }
  Object.assign(game, { token: answer.json.token, playerId: answer.json.player_id,
                        name: answer.json.name });
  game.names[game.playerId] = game.name;
  $("who").textContent = `${game.name} (#${game.playerId})`;
  $("login-box").classList.add("hidden");
  $("play-box").classList.remove("hidden");
  note("logged in: press Play");
}

async function queue(finishedRoom) {
  game.state = "queued";
  const answer = await api("POST", "/queue", { token: game.token, finished_room: finishedRoom || "" });
  if (answer.status === 401) { relogin(); return; }
  await follow(answer.json);
}

async function askLobby() {  // where is my room? (after silence, REJECT 2, or a closed relay)
  if (game.state === "asking" || game.state === "queued") return;
  game.state = "asking";
  const answer = await api("POST", "/queue/status", { token: game.token });
  if (answer.status === 401) { relogin(); return; }
  await follow(answer.json);
}

async function follow(answer) {
  for (;;) {
    if (answer.status === "matched") { play(answer); return; }
    if (answer.status === "idle") { game.state = "lobby"; note("not queued: press Play"); return; }
    $("queue-info").textContent = answer.status === "queued"
      ? `queued: ${answer.position} of ${answer.queue_length}` : "room starting...";
    note(answer.status === "queued" ? "waiting for players" : "room starting");
    await sleep(answer.status === "starting" ? 150 : 300);
    const next = await api("POST", "/queue/status", { token: game.token });
    if (next.status === 401) { relogin(); return; }
    answer = next.json;
  }
}

function relogin() {
  game.state = "lobby";
  $("login-box").classList.remove("hidden");
  note("session expired: log in again");
}

// --- the game over the WebSocket edge -------------------------------------------------------

function play(answer) {
  const server = `${answer.server_host}:${answer.server_port}`;
  $("queue-info").textContent = `room ${answer.room_id}`;
  fetchNames(answer.room_id);
  game.roomId = answer.room_id;
  game.state = "joining";
  game.joinedAt = performance.now();
  if (ws && game.server === server && ws.readyState === WebSocket.OPEN) { sendJoin(); return; }
  if (ws) { ws.onclose = null; ws.close(); }
  game.server = server;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${scheme}://${location.host}/play?server=${encodeURIComponent(server)}`);
  ws.binaryType = "arraybuffer";
  ws.onopen = sendJoin;
  ws.onmessage = (event) => onDatagram(MsgPack.decode(event.data));
  ws.onclose = (event) => {
    ws = null;
    if (game.state === "playing" || game.state === "joining") {
      note(event.code === 4502 ? "game server gone: asking the lobby" : "connection closed");
      askLobby();
    }
  };
}

function send(array) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(MsgPack.encode(array));
}

function sendJoin() {
  game.joinSentAt = performance.now();
  send([1, K.JOIN, game.token, game.roomId]);
}

function onDatagram(msg) {
  if (!Array.isArray(msg) || msg[0] !== 1) return;
  const kind = msg[1];
  if (kind === K.SNAPSHOT) {
    const [, , tick, , endsAt, coins, players] = msg;
    if (game.state !== "playing" || tick <= game.tick) return;  // late or out of order
    Object.assign(game, { tick, endsAt, coins, players, heardAt: performance.now() });
    game.snapshots += 1;
  } else if (kind === K.WELCOME) {
    const [, , conn, roomId, , tick, lastSeq, arena] = msg;
    if (roomId !== game.roomId) return;
    Object.assign(game, { conn, tick: tick - 1, seq: lastSeq, arena, state: "playing",
                          heardAt: performance.now() });
    note(`playing in room ${roomId}`);
    $("arena").focus();
  } else if (kind === K.REJOIN) {
    if (game.state === "playing" && msg[2] === game.conn) { game.state = "joining"; sendJoin(); }
  } else if (kind === K.REJECT) {
    const code = msg[2];
    if (code === REJECT_SUPERSEDED) {
      game.state = "stopped";
      note("your session was taken over by another login: log in again to take it back");
    } else if (code === REJECT_UNKNOWN_ROOM) {
      askLobby();
    } else if (code === REJECT_BAD_TOKEN) {
      relogin();
    } else if (code === REJECT_NOT_IN_ROOM) {
      game.state = "lobby";
      note("not in that room");
    }
  } else if (kind === K.GAME_OVER) {
    if (msg[2] !== game.roomId || game.state === "over") return;
    game.lastScores = msg[3];
    game.state = "over";
    note("round over: queueing again");
    queue(msg[2]);
  }
}

function frame() {  // one input per frame while playing; JOIN retries; silence
  const now = performance.now();
  if (game.state === "playing") {
    if (now - game.heardAt > SILENCE_MS) { note("server silent: asking the lobby"); askLobby(); return; }
    const dx = (keys.has("ArrowRight") || keys.has("d")) - (keys.has("ArrowLeft") || keys.has("a"));
    const dy = (keys.has("ArrowDown") || keys.has("s")) - (keys.has("ArrowUp") || keys.has("w"));
    game.seq += 1;
    send([1, K.INPUT, game.conn, game.seq, dx, dy]);
  } else if (game.state === "joining") {
    if (now - game.joinedAt > JOIN_GIVE_UP_MS) askLobby();
    else if (now - game.joinSentAt > JOIN_RETRY_MS) sendJoin();
  }
}

// --- drawing ---------------------------------------------------------------------------------

function draw() {
  const canvas = $("arena"), ctx = canvas.getContext("2d");
  const scale = canvas.width / (game.arena || 1000);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#f5c542";
  for (let i = 0; i + 1 < game.coins.length; i += 2) {
    ctx.beginPath(); ctx.arc(game.coins[i] * scale, game.coins[i + 1] * scale, 5, 0, 2 * Math.PI); ctx.fill();
  }
  const rows = [];
  for (let i = 0; i + 3 < game.players.length; i += 4) {
    const [id, x, y, score] = game.players.slice(i, i + 4);
    const mine = id === game.playerId;
    ctx.fillStyle = mine ? "#7fd4ff" : "#e86a6a";
    ctx.beginPath(); ctx.arc(x * scale, y * scale, mine ? 8 : 6, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = "#ccc";
    ctx.fillText(game.names[id] || `#${id}`, x * scale + 9, y * scale - 6);
    rows.push([id, score]);
  }
  rows.sort((a, b) => b[1] - a[1]);
  $("scores").innerHTML = "";
  for (const [id, score] of rows) {
    const tr = document.createElement("tr");
    if (id === game.playerId) tr.className = "me";
    tr.append(cell(game.names[id] || `#${id}`), cell(String(score)));
    $("scores").append(tr);
  }
  if (game.endsAt) $("time-left").textContent = `${Math.max(0, Math.round((game.endsAt - game.tick) / 60))} s left`;
  requestAnimationFrame(draw);
}

function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

async function fetchNames(roomId) {
  const answer = await api("GET", `/rooms/${encodeURIComponent(roomId)}`);
  if (answer.status === 200) Object.assign(game.names, answer.json.names);
  return answer;
}

// --- spectating: the room's checkpoint of its last tick, polled 5 times a second ----------------

async function spectate(roomId) {
  game.spectating = roomId;
  game.state = "spectating";
  $("login-box").classList.add("hidden");
  $("play-box").classList.remove("hidden");
  $("queue").classList.add("hidden");
  note(`watching room ${roomId}`);
  while (game.spectating === roomId) {
    const answer = await fetchNames(roomId);
    if (answer.status !== 200) { note(`room ${roomId} is not running`); break; }
    const checkpoint = answer.json.checkpoint;
    if (checkpoint && checkpoint.tick > game.tick) {
      game.tick = checkpoint.tick;
      game.coins = checkpoint.coins;
      game.players = checkpoint.players.flatMap((p) => p.slice(0, 4));
      game.snapshots += 1;
    }
    await sleep(200);
  }
}

// --- side panels: leaderboard, rooms, chat ----------------------------------------------------

let chatSeq = 0;
async function refreshPanels() {
  const top = await api("GET", "/leaderboard/top?n=10");
  if (top.status === 200) {
    $("leaders").innerHTML = "";
    for (const row of top.json.rows) {
      const tr = document.createElement("tr");
      tr.append(cell(String(row.rank)), cell(row.name), cell(String(row.total)));
      $("leaders").append(tr);
    }
  }
  const rooms = await api("GET", "/rooms");
  if (rooms.status === 200) {
    $("rooms").innerHTML = "";
    for (const room of rooms.json.rooms) {
      const li = document.createElement("li"), a = document.createElement("a");
      a.href = `#spectate=${room.room_id}`;
      a.textContent = `${room.room_id} (${room.players.length} players): watch`;
      li.append(a);
      $("rooms").append(li);
    }
  }
  const chat = await api("POST", "/chat/history", { room: "lobby", after_seq: chatSeq, limit: 50 });
  if (chat.status === 200) {
    for (const line of chat.json.lines) {
      chatSeq = Math.max(chatSeq, line.seq);
      const div = document.createElement("div");
      div.textContent = `${line.name}: ${line.text}`;
      $("chat-lines").append(div);
      $("chat-lines").scrollTop = $("chat-lines").scrollHeight;
    }
  }
}

// --- wiring ---------------------------------------------------------------------------------

$("login-form").addEventListener("submit", (e) => { e.preventDefault(); login(false); });
$("register").addEventListener("click", () => login(true));
$("queue").addEventListener("click", () => { if (game.state === "lobby") queue(""); });
$("chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("chat-text").value.trim();
  if (!text || !game.token) return;
  const answer = await api("POST", "/chat/send", { token: game.token, room: "lobby", text });
  if (answer.status === 200) $("chat-text").value = "";
  refreshPanels();
});
addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT") return;
  keys.add(e.key.length === 1 ? e.key.toLowerCase() : e.key);
  if (e.key.startsWith("Arrow")) e.preventDefault();
});
addEventListener("keyup", (e) => keys.delete(e.key.length === 1 ? e.key.toLowerCase() : e.key));
addEventListener("blur", () => keys.clear());
addEventListener("hashchange", () => {
  const match = location.hash.match(/^#spectate=([A-Za-z0-9-]{1,32})$/);
  if (match) spectate(match[1]);
});

setInterval(frame, FRAME_MS);
setInterval(refreshPanels, 2000);
refreshPanels();
requestAnimationFrame(draw);
const start = location.hash.match(/^#spectate=([A-Za-z0-9-]{1,32})$/);
if (start) spectate(start[1]);
