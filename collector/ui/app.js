// hooktrail's page. No framework, no build step. Event content is only ever
// put into the page with textContent (never innerHTML), so a payload holding
// markup stays inert text.
"use strict";

const MAX_ROWS = 500;          // rows kept in the live list; older ones page in on demand
const PAGE = 200;              // rows per page fetched from /api/events
const FILTERS = ["machine", "session", "agent", "hook", "tool", "q"];
const HOOKS = ["SessionStart", "SessionEnd", "UserPromptSubmit", "PreToolUse", "PostToolUse",
  "PostToolUseFailure", "PermissionRequest", "Notification", "Stop", "SubagentStart", "SubagentStop",
  "PreCompact", "CwdChanged", "Invalid", "Unknown"];

const state = {
  filters: {},           // active filters, mirrored in the URL
  cursor: 0,             // position covered by the feed (resume point)
  oldest: null,          // smallest seq in the list, for "Load older"
  rows: new Map(),       // seq -> {event, tr}
  socket: null,
  socketOpenedOnce: false,
  failedOpens: 0,
  polling: false,
  generation: 0,         // bumps on filter change; stale callbacks check it
  paused: false,
  pausedBuffer: [],
  selectedSeq: null,
  selectedSession: null,
  sessionsDirty: true,
  knownSessions: new Set(),
  tools: new Set(),
};

function token() {
  const match = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem("hooktrail-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("hooktrail-token");
}
const TOKEN = token();

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

async function api(path) {
  const headers = TOKEN ? { Authorization: "Bearer " + TOKEN } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function filterQuery(extra) {
  const params = new URLSearchParams();
  for (const name of FILTERS) if (state.filters[name]) params.set(name, state.filters[name]);
  for (const [name, value] of Object.entries(extra || {})) if (value !== null && value !== undefined) params.set(name, value);
  return params.toString();
}

function readFiltersFromUrl() {
  const params = new URLSearchParams(location.search);
  state.filters = {};
  for (const name of FILTERS) {
    const value = params.get(name);
    if (value) state.filters[name] = value;
    document.getElementById("f-" + name).value = value || "";
  }
}

function writeFiltersToUrl() {
  const query = filterQuery();
  history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
}

// ---------- formatting ----------

function clock(ms) {
  const date = new Date(ms);
  return date.toLocaleTimeString([], { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
}
function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return Math.round(ms) + " ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.round(s % 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}
function ago(ms) { return ms === null || ms === undefined ? "never" : duration(Math.max(0, ms)) + " ago"; }
function bytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KB";
  if (n < 1073741824) return (n / 1048576).toFixed(1) + " MB";
  return (n / 1073741824).toFixed(2) + " GB";
}
function short(id) { return id ? String(id).slice(0, 8) : ""; }

function summary(event) {
  const p = event.payload || {};
  const input = p.tool_input || {};
  const pick = input.command || input.file_path || input.pattern || input.url || input.description || input.prompt;
  switch (event.hook) {
    case "UserPromptSubmit": return p.prompt;
    case "PreToolUse": case "PermissionRequest": return pick;
    case "PostToolUse": return (p.duration_ms !== undefined ? p.duration_ms + " ms · " : "") + (pick || "");
    case "PostToolUseFailure": return p.error || pick;
    case "Notification": return p.message;
    case "SessionStart": return p.source;
    case "SessionEnd": return p.reason;
    case "Stop": case "SubagentStop": return p.last_assistant_message;
    case "SubagentStart": return p.agent_type;
    case "CwdChanged": return (p.old_cwd || "") + " → " + (p.new_cwd || p.cwd || "");
    case "Invalid": return p._raw;
    default: return "";
  }
}

// ---------- the event list ----------

function rowFor(event, fresh) {
  const tr = el("tr", "event" + (fresh ? " fresh" : "") + (event.hook === "PostToolUseFailure" ? " failed" : ""));
  tr.dataset.seq = event.seq;
  const text = summary(event);
  const cells = [event.seq, clock(event.ts), event.machine, short(event.session_id), event.agent_id ? short(event.agent_id) : "main",
    event.hook, event.tool || "", typeof text === "string" ? text.slice(0, 300) : ""];
  for (const value of cells) tr.appendChild(el("td", null, value));
  tr.title = event.session_id || "";
  return tr;
}

function noteEvent(event) {
  if (event.tool && !state.tools.has(event.tool)) {
    state.tools.add(event.tool);
    document.getElementById("tools-list").appendChild(el("option")).value = event.tool;
  }
  if (event.session_id && !state.knownSessions.has(event.session_id)) state.sessionsDirty = true;
  if (event.hook === "SessionEnd" || event.hook === "SubagentStart" || event.hook === "SubagentStop") state.sessionsDirty = true;
}

// Newest first: live batches go on top, pages of older events at the bottom.
function addEvents(events, where) {
  const body = document.getElementById("events");
  const fragment = document.createDocumentFragment();
  const ordered = where === "top" ? events.slice().sort((a, b) => b.seq - a.seq) : events;
  for (const event of ordered) {
    if (state.rows.has(event.seq)) continue;
    noteEvent(event);
    const tr = rowFor(event, where === "top");
    state.rows.set(event.seq, { event, tr });
    fragment.appendChild(tr);
    if (state.oldest === null || event.seq < state.oldest) state.oldest = event.seq;
  }
  if (where === "top") body.insertBefore(fragment, body.firstChild);
  else body.appendChild(fragment);
  if (where === "top") {
    // Cap the live list: drop the oldest rows; "Load older" brings them back.
    while (state.rows.size > MAX_ROWS && body.lastChild) {
      const seq = Number(body.lastChild.dataset.seq);
      if (seq === state.selectedSeq) break;
      state.rows.delete(seq);
      body.removeChild(body.lastChild);
      state.oldest = body.lastChild ? Number(body.lastChild.dataset.seq) : null;
    }
    setTimeout(() => { for (const tr of body.querySelectorAll("tr.fresh")) tr.classList.remove("fresh"); }, 1500);
  }
  document.getElementById("shown").textContent = state.rows.size + " shown";
}

function liveEvents(events, cursor) {
  if (cursor > state.cursor) state.cursor = cursor;
  if (!events.length) return;
  if (state.paused) { state.pausedBuffer.push(...events); return; }
  addEvents(events, "top");
}

function clearList() {
  state.rows.clear();
  state.oldest = null;
  state.selectedSeq = null;
  document.getElementById("events").replaceChildren();
}

async function loadLatest(generation) {
  const page = await api("/api/events?" + filterQuery({ order: "desc", limit: PAGE }));
  if (generation !== state.generation) return;
  addEvents(page.events, "bottom");
  state.cursor = page.last_seq;
  document.getElementById("older").hidden = !page.more;
  state.olderCursor = page.next;
}

async function loadOlder() {
  const generation = state.generation;
  const before = Math.min(state.olderCursor || Infinity, state.oldest || Infinity);
  if (!isFinite(before)) return;
  const page = await api("/api/events?" + filterQuery({ order: "desc", limit: PAGE, before }));
  if (generation !== state.generation) return;
  addEvents(page.events, "bottom");
  state.olderCursor = page.next;
  document.getElementById("older").hidden = !page.more;
}

// ---------- the live feed: WebSocket, else polling ----------

function connect() {
  const generation = state.generation;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = filterQuery({ after: state.cursor, token: TOKEN || null });
  let socket;
  try {
    socket = new WebSocket(scheme + "//" + location.host + "/ws?" + query);
  } catch (error) {
    return startPolling(generation);
  }
  state.socket = socket;
  let opened = false;
  setConnection("connecting", "warn");
  socket.onopen = () => { opened = true; state.socketOpenedOnce = true; state.failedOpens = 0; setConnection("replaying", "warn"); };
  socket.onmessage = (message) => {
    if (generation !== state.generation) return;
    const data = JSON.parse(message.data);
    if (data.type === "events") liveEvents(data.events, data.cursor);
    else if (data.type === "live") { if (data.cursor > state.cursor) state.cursor = data.cursor; setConnection("live", "good"); }
  };
  socket.onclose = (closing) => {
    if (state.socket === socket) state.socket = null;
    if (generation !== state.generation) return;
    if (!opened) state.failedOpens += 1;
    if (!state.socketOpenedOnce && state.failedOpens >= 2) return startPolling(generation);
    const wait = Math.min(10000, 500 * Math.pow(2, Math.min(state.failedOpens, 5)));
    setConnection("reconnecting" + (closing.reason ? " (" + closing.reason + ")" : ""), "warn");
    setTimeout(() => { if (generation === state.generation) connect(); }, opened ? 200 : wait);
  };
}

async function startPolling(generation) {
  if (state.polling) return;
  state.polling = true;
  setConnection("polling", "warn");
  while (generation === state.generation) {
    try {
      const page = await api("/api/events?" + filterQuery({ after: state.cursor, limit: 1000 }));
      if (generation !== state.generation) break;
      liveEvents(page.events, page.next);
      setConnection("polling", "good");
      if (page.more) continue;
    } catch (error) {
      setConnection("polling: " + error.message, "bad");
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  state.polling = false;
}

function setConnection(text, tone) {
  const node = document.getElementById("conn");
  node.textContent = text;
  node.className = "value " + tone;
}

// ---------- sessions ----------

async function refreshSessions() {
  state.sessionsDirty = false;
  const data = await api("/api/sessions");
  const box = document.getElementById("sessions");
  const fragment = document.createDocumentFragment();
  const byMachine = new Map();
  for (const session of data.sessions) {
    state.knownSessions.add(session.session_id);
    if (!byMachine.has(session.machine)) byMachine.set(session.machine, []);
    byMachine.get(session.machine).push(session);
  }
  const machines = document.getElementById("machines-list");
  machines.replaceChildren();
  for (const machine of [...byMachine.keys()].sort()) {
    machines.appendChild(el("option")).value = machine;
    const group = el("div", "machine");
    group.dataset.machine = machine;
    group.appendChild(el("h3", null, machine));
    for (const session of byMachine.get(machine)) {
      const button = el("button", "session" + (session.session_id === state.selectedSession ? " selected" : ""));
      button.type = "button";
      button.dataset.session = session.session_id;
      const top = el("div");
      top.appendChild(el("span", "sid", short(session.session_id)));
      top.appendChild(document.createTextNode(" "));
      top.appendChild(el("span", "status " + session.status, session.status));
      top.appendChild(el("span", "muted", " " + duration(session.duration_ms) + " · " + session.event_count + " events" +
        (session.agent_count ? " · " + session.agent_count + " agents" : "")));
      button.appendChild(top);
      button.appendChild(el("div", "cwd", session.cwd || ""));
      button.title = session.session_id;
      button.addEventListener("click", () => selectSession(session.session_id));
      group.appendChild(button);
    }
    fragment.appendChild(group);
  }
  box.replaceChildren(fragment);
  document.getElementById("session-total").textContent = "(" + data.total + ")";
  if (state.selectedSession) showSession(state.selectedSession);
}

function selectSession(id) {
  state.selectedSession = id;
  document.getElementById("f-session").value = id;
  applyFilters();
  for (const node of document.querySelectorAll(".session")) node.classList.toggle("selected", node.dataset.session === id);
}

// The completeness check (DESIGN §7): "complete", or how many events the
// transcript shows that the hooks never reported.
function completenessText(c) {
  if (!c) return "";
  if (c.complete) return " · complete";
  const missing = c.missing_tool_events + c.missing_subagent_starts + (c.session_end_missing ? 1 : 0);
  return " · " + missing + (missing === 1 ? " event" : " events") + " missing";
}

async function showSession(id) {
  let data;
  try { data = await api("/api/sessions/" + encodeURIComponent(id)); } catch (error) { return; }
  if (id !== state.selectedSession) return;
  const s = data.session;
  document.getElementById("sd-id").textContent = short(s.session_id);
  document.getElementById("sd-id").title = s.session_id;
  document.getElementById("sd-meta").textContent = s.machine + " · " + (s.cwd || "") + " · " + s.status + " · " +
    duration(s.duration_ms) + " · " + s.event_count + " events" + (s.end_reason ? " · ended: " + s.end_reason : "") +
    completenessText(s.completeness);
  // Agent tree: the main agent at the root, subagents under the agent that started them.
  const children = new Map();
  for (const agent of data.agents) {
    const parent = agent.parent_agent_id || "main";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(agent);
  }
  const build = (id, label, depth) => {
    const li = el("li", null, label);
    const kids = children.get(id) || [];
    if (kids.length && depth < 20) {
      const ul = el("ul");
      for (const agent of kids) {
        ul.appendChild(build(agent.agent_id, (agent.agent_type || "agent") + " " + short(agent.agent_id) + " · " +
          agent.event_count + " events" + (agent.stopped_ts ? " · " + duration(agent.stopped_ts - agent.started_ts) : " · running"), depth + 1));
      }
      li.appendChild(ul);
    }
    return li;
  };
  document.getElementById("sd-agents").replaceChildren(build("main", "main agent", 0));
  const calls = document.getElementById("sd-calls");
  calls.replaceChildren();
  for (const call of data.tool_calls.slice(0, 100)) {
    const tr = el("tr", call.outcome === "failed" ? "failed" : "");
    for (const value of [call.tool, call.duration_ms === null ? "…" : Math.round(call.duration_ms), call.outcome, call.agent_id ? short(call.agent_id) : "main"]) {
      tr.appendChild(el("td", null, value));
    }
    calls.appendChild(tr);
  }
  const failures = document.getElementById("sd-failures");
  failures.replaceChildren();
  for (const call of data.failures) failures.appendChild(el("li", "bad", call.tool + ": " + (call.error || "failed")));
  if (!data.failures.length) failures.appendChild(el("li", "muted", "none"));
  document.getElementById("session-detail").hidden = false;
  document.getElementById("detail-hint").hidden = true;
}

// ---------- event detail ----------

function showEvent(seq) {
  const row = state.rows.get(seq);
  if (!row) return;
  for (const node of document.querySelectorAll("tr.event.selected")) node.classList.remove("selected");
  row.tr.classList.add("selected");
  state.selectedSeq = seq;
  const e = row.event;
  document.getElementById("ed-seq").textContent = "#" + e.seq;
  document.getElementById("ed-meta").textContent = e.hook + (e.tool ? " · " + e.tool : "") + " · " + new Date(e.ts).toISOString() +
    " · " + e.machine + " · session " + (e.session_id || "none") + " · agent " + (e.agent_id || "main") + " · via " + e.source + " · id " + e.id;
  document.getElementById("payload").textContent = JSON.stringify(e.payload, null, 2);
  document.getElementById("event-detail").hidden = false;
  document.getElementById("detail-hint").hidden = true;
}

// ---------- chart: events per minute, one small bar chart per hook ----------

async function refreshChart() {
  const now = Date.now();
  const data = await api("/api/stats?bucket=60&since=" + (now - 60 * 60000));
  const minutes = 60;
  const start = Math.floor(data.since / 60000);
  const perHook = new Map();
  for (const point of data.series) {
    if (!perHook.has(point.hook)) perHook.set(point.hook, new Array(minutes + 1).fill(0));
    const index = Math.floor(point.t / 60000) - start;
    if (index >= 0 && index <= minutes) perHook.get(point.hook)[index] += point.count;
  }
  const box = document.getElementById("chart");
  const fragment = document.createDocumentFragment();
  const svgNs = "http://www.w3.org/2000/svg";
  for (const hook of [...perHook.keys()].sort()) {
    const counts = perHook.get(hook);
    const max = Math.max(1, ...counts);
    const card = el("div", "spark");
    card.dataset.hook = hook;
    card.appendChild(el("div", "name", hook + " · " + counts[counts.length - 1] + "/min · max " + max));
    const svg = document.createElementNS(svgNs, "svg");
    svg.setAttribute("width", String((minutes + 1) * 3));
    svg.setAttribute("height", "28");
    counts.forEach((count, index) => {
      if (!count) return;
      const rect = document.createElementNS(svgNs, "rect");
      const height = Math.max(1, Math.round((count / max) * 28));
      rect.setAttribute("x", String(index * 3));
      rect.setAttribute("y", String(28 - height));
      rect.setAttribute("width", "2");
      rect.setAttribute("height", String(height));
      const title = document.createElementNS(svgNs, "title");
      title.textContent = count + " at " + new Date((start + index) * 60000).toLocaleTimeString();
      rect.appendChild(title);
      svg.appendChild(rect);
    });
    card.appendChild(svg);
    fragment.appendChild(card);
  }
  if (!perHook.size) fragment.appendChild(el("span", "muted", "no events in the last hour"));
  box.replaceChildren(fragment);
}

// ---------- health ----------

async function refreshHealth() {
  const h = await api("/api/health");
  const set = (id, text, tone) => { const node = document.getElementById(id); node.textContent = text; node.className = "value" + (tone ? " " + tone : ""); };
  const link = h.redis.link;
  set("h-redis", link, link === "up" ? "good" : link === "disabled" ? "" : "bad");
  set("h-pending", h.redis.pending, h.redis.pending > 1000 ? "warn" : "");
  set("h-queue", h.writer.queue, h.writer.queue > 1000 ? "warn" : "");
  set("h-commit", ago(h.writer.last_commit_age_ms), h.writer.write_errors ? "bad" : "");
  let stored = 0, dupes = 0, rejected = 0;
  for (const counters of Object.values(h.sources)) { stored += counters.stored; dupes += counters.duplicates; rejected += counters.rejected; }
  set("h-stored", stored);
  set("h-dupes", dupes);
  set("h-rejected", rejected, rejected ? "warn" : "");
  set("h-db", bytes(h.database.bytes + h.database.wal_bytes));
}

// ---------- wiring ----------

function applyFilters() {
  state.filters = {};
  for (const name of FILTERS) {
    const value = document.getElementById("f-" + name).value.trim();
    if (value) state.filters[name] = value;
  }
  writeFiltersToUrl();
  restart();
}

function restart() {
  state.generation += 1;
  if (state.socket) { const socket = state.socket; state.socket = null; socket.close(); }
  clearList();
  const generation = state.generation;
  loadLatest(generation).then(() => { if (generation === state.generation) connect(); },
    (error) => { setConnection("error: " + error.message, "bad"); setTimeout(() => { if (generation === state.generation) restart(); }, 3000); });
}

function every(ms, task) {
  const run = () => task().catch(() => {}).finally(() => setTimeout(run, ms));
  run();
}

document.addEventListener("DOMContentLoaded", () => {
  const hookSelect = document.getElementById("f-hook");
  for (const hook of HOOKS) hookSelect.appendChild(el("option", null, hook)).value = hook;
  readFiltersFromUrl();
  state.selectedSession = state.filters.session || null;
  document.getElementById("filters").addEventListener("submit", (event) => { event.preventDefault(); applyFilters(); });
  document.getElementById("f-hook").addEventListener("change", applyFilters);
  document.getElementById("clear").addEventListener("click", () => {
    for (const name of FILTERS) document.getElementById("f-" + name).value = "";
    state.selectedSession = null;
    document.getElementById("session-detail").hidden = true;
    applyFilters();
  });
  document.getElementById("events").addEventListener("click", (event) => {
    const tr = event.target.closest("tr.event");
    if (tr) showEvent(Number(tr.dataset.seq));
  });
  document.getElementById("older").addEventListener("click", () => loadOlder().catch(() => {}));
  document.getElementById("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    document.getElementById("pause").textContent = state.paused ? "Resume (" + state.pausedBuffer.length + ")" : "Pause";
    if (!state.paused && state.pausedBuffer.length) { addEvents(state.pausedBuffer, "top"); state.pausedBuffer = []; }
  });
  window.addEventListener("popstate", () => { readFiltersFromUrl(); restart(); });
  restart();
  every(2000, refreshHealth);
  every(10000, refreshChart);
  every(1000, async () => {
    if (state.sessionsDirty || !state.lastSessions || Date.now() - state.lastSessions > 10000) {
      state.lastSessions = Date.now();
      await refreshSessions();
    }
  });
});
