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
  sort: "recent",        // session list order (sort= in the URL)
  view: "events",        // "events", "overview" or "session" (the hash route)
  sessionsDrawn: false,  // the first session list is marked for the first-paint benchmark
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
  state.sort = ["cost", "duration"].includes(params.get("sort")) ? params.get("sort") : "recent";
  document.getElementById("sort").value = state.sort;
}

function writeFiltersToUrl() {
  const query = filterQuery(state.sort !== "recent" ? { sort: state.sort } : {});
  history.replaceState(null, "", location.pathname + (query ? "?" + query : "") + location.hash);
}

// Views live in the hash: #/ (events), #/overview, #/session/ID, and
// #/session/ID/event/SEQ or #/event/SEQ with an event's payload open.
function readRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const route = { view: "events", session: null, event: null };
  if (parts[0] === "overview") route.view = "overview";
  if (parts[0] === "session" && parts[1]) { route.view = "session"; route.session = parts[1]; }
  const at = parts.indexOf("event");
  if (at >= 0 && parts[at + 1]) route.event = Number(parts[at + 1]);
  return route;
}

function routeHash(view, session, event) {
  let hash = view === "overview" ? "#/overview" : session ? "#/session/" + encodeURIComponent(session) : "#/";
  if (event) hash += (hash === "#/" ? "" : "/") + "event/" + event;
  return hash;
}

function go(view, session, event) {
  const hash = routeHash(view, session, event);
  const current = readRoute();
  // Moving between events of one view replaces the entry; a new view adds one.
  const method = current.view === view && current.session === session ? "replaceState" : "pushState";
  if (location.hash !== hash) history[method](null, "", location.pathname + location.search + hash);
  applyRoute();
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
function money(usd) {
  if (usd === null || usd === undefined) return "";
  return usd >= 100 ? "$" + usd.toFixed(0) : usd >= 1 ? "$" + usd.toFixed(2) : "$" + usd.toFixed(3);
}
function tokens(n) {
  if (!n) return "0 tok";
  return n >= 1e6 ? (n / 1e6).toFixed(1) + "M tok" : n >= 1e3 ? Math.round(n / 1e3) + "k tok" : n + " tok";
}
function project(cwd) { return cwd ? cwd.replace(/\/+$/, "").split("/").pop() || cwd : ""; }
const STATE_LABELS = { working: "working", waiting: "waiting for you", idle: "idle", failed: "failed",
  compacting: "compacting", ended: "ended", gone_quiet: "gone quiet" };
// The import work may add `completeness`: a word, a count of missing events, or an object saying so.
function completeness(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number") return value > 0 ? value + " events missing" : "complete";
  const missing = value.missing_events ?? value.missing;
  if (typeof missing === "number") return missing > 0 ? missing + " events missing" : "complete";
  return value.state || value.status || "";
}
const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569"];

// Puts `text` into `parent` with every case-insensitive occurrence of `term`
// wrapped in <mark>: text nodes and elements built with DOM calls only.
function appendHighlighted(parent, text, term) {
  text = String(text);
  if (!term) { parent.appendChild(document.createTextNode(text)); return; }
  const lower = text.toLowerCase(), needle = term.toLowerCase();
  let from = 0;
  for (let at = lower.indexOf(needle); at >= 0; at = lower.indexOf(needle, from)) {
    if (at > from) parent.appendChild(document.createTextNode(text.slice(from, at)));
    parent.appendChild(el("mark", null, text.slice(at, at + needle.length)));
    from = at + needle.length;
  }
  if (from < text.length) parent.appendChild(document.createTextNode(text.slice(from)));
}

// The first string in a payload holding `term`, cut to a window around it.
function snippet(value, term) {
  const needle = term.toLowerCase();
  const walk = (v) => {
    if (typeof v === "string") {
      const at = v.toLowerCase().indexOf(needle);
      if (at < 0) return null;
      const start = Math.max(0, at - 60);
      return (start ? "…" : "") + v.slice(start, at + needle.length + 120).replace(/\s+/g, " ");
    }
    if (v && typeof v === "object") for (const item of Object.values(v)) { const found = walk(item); if (found) return found; }
    return null;
  };
  return walk(value);
}

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
  const term = state.filters.q;
  let text = summary(event);
  if (term && !(typeof text === "string" && text.toLowerCase().includes(term.toLowerCase()))) text = snippet(event.payload, term) || text;
  const cells = [event.seq, clock(event.ts), event.machine, null, event.agent_id ? short(event.agent_id) : "main",
    event.hook, event.tool || ""];
  for (const value of cells) tr.appendChild(el("td", null, value));
  // The session cell links to the event in its session's view.
  if (event.session_id) {
    const link = el("a", "session-link", short(event.session_id));
    link.href = routeHash("session", event.session_id, event.seq);
    tr.children[3].appendChild(link);
  }
  const cell = el("td", "summary");
  appendHighlighted(cell, typeof text === "string" ? text.slice(0, 300) : "", term);
  tr.appendChild(cell);
  tr.title = event.session_id || "";
  return tr;
}

function noteEvent(event) {
  if (event.tool && !state.tools.has(event.tool)) {
    state.tools.add(event.tool);
    document.getElementById("tools-list").appendChild(el("option")).value = event.tool;
  }
  if (event.session_id && !state.knownSessions.has(event.session_id)) state.sessionsDirty = true;
  if (event.state || event.hook === "SessionEnd" || event.hook === "SubagentStart" || event.hook === "SubagentStop") state.sessionsDirty = true;
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
  document.dispatchEvent(new CustomEvent("hooktrail:events", { detail: events }));
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

function sessionButton(session, now) {
  const waiting = session.state === "waiting";
  const button = el("button", "session state-" + session.state + (session.session_id === state.selectedSession ? " selected" : ""));
  button.type = "button";
  button.dataset.session = session.session_id;
  const top = el("div", "top");
  const badge = el("span", "badge " + session.state, STATE_LABELS[session.state] || session.state);
  if (session.state_since) badge.appendChild(el("span", "since", " " + duration(Math.max(0, now - session.state_since))));
  if (session.state_detail && (waiting || session.state === "failed")) badge.title = session.state_detail;
  top.appendChild(badge);
  top.appendChild(el("span", "title", session.title || short(session.session_id)));
  button.appendChild(top);
  const where = [project(session.cwd), session.machine, session.model].filter(Boolean).join(" · ");
  button.appendChild(el("div", "where", where));
  const facts = [session.cost_usd !== null && session.cost_usd !== undefined ? money(session.cost_usd) :
      session.unpriced_responses ? "cost unknown" : "", session.tokens ? tokens(session.tokens) : "", duration(session.duration_ms),
    session.event_count + " events", completeness(session.completeness),
    session.current_tool ? (waiting ? "asks for " : "running ") + session.current_tool : ""].filter(Boolean);
  button.appendChild(el("div", "facts", facts.join(" · ")));
  button.title = session.session_id + (session.state_detail ? "\n" + session.state_detail : "");
  return button;
}

async function refreshSessions() {
  state.sessionsDirty = false;
  const data = await api("/api/sessions" + (state.sort !== "recent" ? "?sort=" + state.sort : ""));
  const fragment = document.createDocumentFragment();
  const machines = new Set();
  const waiting = data.sessions.filter((s) => s.state === "waiting").length;
  if (waiting) fragment.appendChild(el("div", "waiting-note", waiting + (waiting === 1 ? " session waits" : " sessions wait") + " for you"));
  for (const session of data.sessions) {
    state.knownSessions.add(session.session_id);
    machines.add(session.machine);
    fragment.appendChild(sessionButton(session, data.now));
  }
  state.sessionsById = new Map(data.sessions.map((s) => [s.session_id, s]));
  const list = document.getElementById("machines-list");
  list.replaceChildren();
  for (const machine of [...machines].sort()) list.appendChild(el("option")).value = machine;
  document.getElementById("sessions").replaceChildren(fragment);
  document.getElementById("session-total").textContent = "(" + data.total + ")";
  if (!state.sessionsDrawn) { state.sessionsDrawn = true; performance.mark("sessions-drawn"); }
  if (state.selectedSession) showSession(state.selectedSession);
}

function selectSession(id) {
  go("session", id, null);
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
    duration(s.duration_ms) + " · " + s.event_count + " events" + (s.end_reason ? " · ended: " + s.end_reason : "");
  const title = document.getElementById("sv-title");
  title.replaceChildren(el("span", "badge " + s.state, STATE_LABELS[s.state] || s.state), document.createTextNode(" " + (s.title || short(s.session_id))));
  document.getElementById("sv-meta").textContent = [project(s.cwd), s.machine, s.model, money(s.cost_usd), s.tokens ? tokens(s.tokens) : "",
    duration(s.duration_ms), s.event_count + " events", completeness(s.completeness), s.state_detail].filter(Boolean).join(" · ");
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
          agent.event_count + " events" + (agent.stopped_ts ? " · " + duration(agent.stopped_ts - agent.started_ts) : " · running") +
          (agent.state ? " · " + (STATE_LABELS[agent.state] || agent.state) : "") + (agent.cost_usd ? " · " + money(agent.cost_usd) : ""), depth + 1));
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
  const prompts = document.getElementById("sv-prompts");
  prompts.replaceChildren();
  for (const prompt of data.prompts) {
    const tr = el("tr", prompt.outcome === "failed" ? "failed" : "");
    const text = el("td", "prompt-text", (prompt.prompt || "").replace(/\s+/g, " ").slice(0, 200));
    text.title = prompt.prompt || "";
    tr.appendChild(text);
    for (const value of [prompt.duration_ms === null ? "running" : duration(prompt.duration_ms),
      prompt.tool_calls + (prompt.tool_failures ? " (" + prompt.tool_failures + " failed)" : ""),
      prompt.tokens ? tokens(prompt.tokens) : "", money(prompt.cost_usd), prompt.outcome]) tr.appendChild(el("td", null, value));
    prompts.appendChild(tr);
  }
  if (!data.prompts.length) prompts.appendChild(el("tr")).appendChild(el("td", "muted", "no prompts recorded"));
  document.getElementById("session-detail").hidden = false;
  document.getElementById("detail-hint").hidden = !document.getElementById("event-detail").hidden;
  await Promise.all([drawTimeline(id), showEdits(id)]);
}

// ---------- the session timeline: plain SVG ----------

const LANE = 24, AXIS = 22, LABEL = 110;

async function drawTimeline(id) {
  const data = await api("/api/sessions/" + encodeURIComponent(id) + "/timeline");
  if (id !== state.selectedSession) return;
  const box = document.getElementById("timeline");
  const width = Math.max(400, box.clientWidth || 800);
  const plot = width - LABEL - 10;
  const t0 = data.start, t1 = Math.max(data.end, t0 + 1);
  const x = (ts) => LABEL + ((Math.min(Math.max(ts, t0), t1) - t0) / (t1 - t0)) * plot;
  const height = AXIS + data.lanes.length * LANE + 4;
  const root = svg("svg", { width, height, class: "timeline", role: "img", "aria-label": "session timeline" });
  // The time axis: about six ticks, each labelled with its offset from the start.
  const step = niceStep((t1 - t0) / 6);
  for (let t = 0; t <= t1 - t0; t += step) {
    root.appendChild(svg("line", { x1: x(t0 + t), x2: x(t0 + t), y1: AXIS - 4, y2: height, class: "grid" }));
    root.appendChild(svg("text", { x: x(t0 + t) + 2, y: AXIS - 8, class: "tick" }, duration(t)));
  }
  data.lanes.forEach((lane, index) => {
    const y = AXIS + index * LANE;
    root.appendChild(svg("text", { x: 4, y: y + 15, class: "lane-label" }, index ? lane.label + " " + short(lane.agent_id) : "main"));
    if (index && lane.started_ts) {
      const life = svg("rect", { x: x(lane.started_ts), y: y + 2, width: Math.max(1, x(lane.stopped_ts || t1) - x(lane.started_ts)), height: LANE - 4, class: "life" });
      life.appendChild(svg("title", {}, lane.label + " " + lane.agent_id + " · " + duration((lane.stopped_ts || t1) - lane.started_ts)));
      root.appendChild(life);
    }
  });
  for (const [lane, kind, label, start, end, outcome, seq] of data.spans) {
    const y = AXIS + lane * LANE;
    const shaded = kind !== "tool";
    const rect = svg("rect", { x: x(start), y: shaded ? y + 1 : y + 6, width: Math.max(2, x(end ?? t1) - x(start)),
      height: shaded ? LANE - 2 : LANE - 12, class: "span " + kind + " " + outcome });
    rect.dataset.seq = seq;
    rect.appendChild(svg("title", {}, (kind === "tool" ? label + " · " + outcome : kind === "permission" ? "waiting for permission: " + (label || "") : "compacting") +
      " · " + (end === null ? "still open" : duration(end - start)) + " · #" + seq));
    root.appendChild(rect);
  }
  for (const [lane, hook, ts, seq, text] of data.markers) {
    const y = AXIS + lane * LANE;
    const cx = x(ts);
    const kind = hook === "UserPromptSubmit" ? "prompt" : hook === "StopFailure" ? "stop-failed" : "stop";
    const mark = hook === "UserPromptSubmit"
      ? svg("path", { d: "M" + (cx - 5) + " " + y + " L" + (cx + 5) + " " + y + " L" + cx + " " + (y + 8) + " Z", class: "marker " + kind })
      : svg("line", { x1: cx, x2: cx, y1: y + 2, y2: y + LANE - 2, class: "marker " + kind });
    mark.dataset.seq = seq;
    mark.appendChild(svg("title", {}, hook + (text ? ": " + text : "") + " · #" + seq));
    root.appendChild(mark);
  }
  box.replaceChildren(root);
}

// A round tick step (1, 2 or 5 times a power of ten, or whole minutes and hours).
function niceStep(raw) {
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000,
    600000, 900000, 1800000, 3600000, 7200000, 21600000, 43200000, 86400000];
  return steps.find((step) => step >= raw) || Math.ceil(raw / 86400000) * 86400000;
}

// ---------- edits: the diffs Edit, Write and MultiEdit made ----------

// A line diff (longest common subsequence) of two short texts; long ones
// show as all removed then all added.
function lineDiff(before, after) {
  const a = String(before ?? "").split("\n"), b = String(after ?? "").split("\n");
  if (a.length * b.length > 250000) return a.map((l) => ["-", l]).concat(b.map((l) => ["+", l]));
  const table = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--)
    table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
    else if (table[i + 1][j] >= table[i][j + 1]) out.push(["-", a[i++]]);
    else out.push(["+", b[j++]]);
  }
  while (i < a.length) out.push(["-", a[i++]]);
  while (j < b.length) out.push(["+", b[j++]]);
  return out;
}

async function showEdits(id) {
  const pages = await Promise.all(["Edit", "MultiEdit", "Write"].map((tool) =>
    api("/api/events?session=" + encodeURIComponent(id) + "&hook=PreToolUse&tool=" + tool + "&limit=200").catch(() => ({ events: [] }))));
  if (id !== state.selectedSession) return;
  const events = pages.flatMap((page) => page.events).sort((x, y) => x.seq - y.seq);
  const box = document.getElementById("sv-edits");
  const fragment = document.createDocumentFragment();
  for (const event of events) {
    const input = (event.payload && event.payload.tool_input) || {};
    const changes = event.tool === "Write" ? [[null, input.content]] : event.tool === "MultiEdit"
      ? (input.edits || []).map((edit) => [edit.old_string, edit.new_string]) : [[input.old_string, input.new_string]];
    const item = el("div", "edit");
    const head = el("div", "edit-head");
    const link = el("a", null, "#" + event.seq);
    link.href = routeHash("session", id, event.seq);
    head.append(link, document.createTextNode(" " + event.tool + " " + (input.file_path || "") + " · " + clock(event.ts)));
    item.appendChild(head);
    const pre = el("pre", "diff");
    let shown = 0;
    for (const [before, after] of changes) {
      const lines = before === null ? String(after ?? "").split("\n").map((l) => ["+", l]) : lineDiff(before, after);
      for (const [sign, line] of lines) {
        if (shown++ >= 400) break;
        pre.appendChild(el("span", sign === "+" ? "add" : sign === "-" ? "del" : "same", sign + " " + line + "\n"));
      }
    }
    if (shown > 400) pre.appendChild(el("span", "muted", "… " + (shown - 400) + " more lines\n"));
    item.appendChild(pre);
    fragment.appendChild(item);
  }
  if (!events.length) fragment.appendChild(el("p", "muted", "no edits in this session"));
  box.replaceChildren(fragment);
  document.getElementById("sv-edit-count").textContent = "(" + events.length + ")";
}

// ---------- event detail ----------

async function showEvent(seq) {
  let row = state.rows.get(seq);
  let event = row && row.event;
  if (!event) {
    // An event not in the list (a timeline span, a link): read it by its seq.
    const page = await api("/api/events?after=" + (seq - 1) + "&before=" + (seq + 1) + "&limit=1").catch(() => ({ events: [] }));
    event = page.events[0];
    if (!event) return;
  }
  for (const node of document.querySelectorAll("tr.event.selected")) node.classList.remove("selected");
  if (row) { row.tr.classList.add("selected"); row.tr.scrollIntoView({ block: "nearest" }); }
  state.selectedSeq = seq;
  const e = event;
  document.getElementById("ed-seq").textContent = "#" + e.seq;
  document.getElementById("ed-meta").textContent = e.hook + (e.tool ? " · " + e.tool : "") + " · " + new Date(e.ts).toISOString() +
    " · " + e.machine + " · session " + (e.session_id || "none") + " · agent " + (e.agent_id || "main") + " · via " + e.source + " · id " + e.id;
  document.getElementById("payload").textContent = JSON.stringify(e.payload, null, 2);
  document.getElementById("event-detail").hidden = false;
  document.getElementById("detail-hint").hidden = true;
}

function closeEvent() {
  document.getElementById("event-detail").hidden = true;
  for (const node of document.querySelectorAll("tr.event.selected")) node.classList.remove("selected");
  state.selectedSeq = null;
  document.getElementById("detail-hint").hidden = !document.getElementById("session-detail").hidden;
  const route = readRoute();
  if (route.event) go(route.view, route.session, null);
}

// Opens an event and puts it in the URL.
function openEvent(seq) {
  const route = readRoute();
  go(route.view, route.session, seq);
}

// ---------- overview: events per minute and cost per day, plain SVG ----------

// A stacked bar chart: `columns` is [{label, values: Map(key -> number)}],
// drawn with a y axis (0, half, max), x labels every `labelEvery` columns
// and a legend.
function stackedBars(box, columns, { labelEvery, yFormat, title }) {
  const keys = [...new Set(columns.flatMap((c) => [...c.values.keys()]))].sort();
  const colour = new Map(keys.map((key, index) => [key, PALETTE[index % PALETTE.length]]));
  const width = Math.max(400, box.clientWidth || 800), height = 180, left = 56, bottom = 22, top = 8;
  const plotW = width - left - 8, plotH = height - top - bottom;
  const totals = columns.map((c) => [...c.values.values()].reduce((a, b) => a + b, 0));
  const max = Math.max(...totals, 0) || 1;
  const root = svg("svg", { width, height, class: "bars", role: "img", "aria-label": title });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH - fraction * plotH;
    root.appendChild(svg("line", { x1: left, x2: width - 8, y1: y, y2: y, class: "grid" }));
    root.appendChild(svg("text", { x: left - 4, y: y + 4, class: "tick y" }, yFormat(max * fraction)));
  }
  const slot = plotW / Math.max(1, columns.length);
  columns.forEach((column, index) => {
    let y = top + plotH;
    for (const key of keys) {
      const value = column.values.get(key) || 0;
      if (!value) continue;
      const h = (value / max) * plotH;
      y -= h;
      const rect = svg("rect", { x: left + index * slot + 1, y, width: Math.max(1, slot - 2), height: Math.max(0.5, h), fill: colour.get(key) });
      rect.appendChild(svg("title", {}, key + ": " + yFormat(value) + " · " + column.label));
      root.appendChild(rect);
    }
    if (index % labelEvery === 0) root.appendChild(svg("text", { x: left + index * slot, y: height - 6, class: "tick" }, column.label));
  });
  root.appendChild(svg("line", { x1: left, x2: left, y1: top, y2: top + plotH, class: "axis" }));
  root.appendChild(svg("line", { x1: left, x2: width - 8, y1: top + plotH, y2: top + plotH, class: "axis" }));
  const legend = el("div", "legend");
  for (const key of keys) {
    const item = el("span", "key");
    const swatch = svg("svg", { width: 10, height: 10 });
    swatch.appendChild(svg("rect", { width: 10, height: 10, fill: colour.get(key) }));
    item.append(swatch, document.createTextNode(" " + key));
    legend.appendChild(item);
  }
  if (!keys.length) legend.appendChild(el("span", "muted", "nothing yet"));
  box.replaceChildren(root, legend);
}

async function refreshOverview() {
  if (state.view !== "overview") return;
  const now = Date.now();
  const data = await api("/api/stats?bucket=60&since=" + (now - 60 * 60000));
  const by = document.getElementById("stack-by").value;
  const start = Math.floor(data.since / 60000);
  const minutes = [];
  for (let index = 0; index <= 60; index++) {
    const date = new Date((start + index) * 60000);
    minutes.push({ label: String(date.getHours()).padStart(2, "0") + ":" + String(date.getMinutes()).padStart(2, "0"), values: new Map() });
  }
  for (const point of data.series) {
    const column = minutes[Math.floor(point.t / 60000) - start];
    const key = by === "machine" ? point.machine : point.hook;
    if (column) column.values.set(key, (column.values.get(key) || 0) + point.count);
  }
  stackedBars(document.getElementById("chart-events"), minutes, { labelEvery: 10, yFormat: (v) => String(Math.round(v)), title: "events per minute" });
  const days = new Map();
  const firstDay = Math.floor((now - 29 * 86400000) / 86400000) * 86400000;
  for (let day = firstDay; day <= now; day += 86400000) days.set(day, { model: new Map(), project: new Map() });
  for (const row of data.cost_per_day) {
    const day = days.get(row.day);
    if (!day || row.cost_usd === null) continue;
    day.model.set(row.model, (day.model.get(row.model) || 0) + row.cost_usd);
    const name = project(row.project) || "(none)";
    day.project.set(name, (day.project.get(name) || 0) + row.cost_usd);
  }
  const dayLabel = (day) => new Date(day).toISOString().slice(5, 10);
  for (const [which, box] of [["model", "chart-cost-model"], ["project", "chart-cost-project"]]) {
    const columns = [...days.entries()].map(([day, sums]) => ({ label: dayLabel(day), values: sums[which] }));
    stackedBars(document.getElementById(box), columns, { labelEvery: 5, yFormat: (v) => "$" + (v >= 10 ? v.toFixed(0) : v.toFixed(2)), title: "cost per day by " + which });
  }
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

// Shows what the hash names: the overview, a session (its events filtered to
// it), an open event.
function applyRoute() {
  const route = readRoute();
  state.view = route.view;
  document.getElementById("overview").hidden = route.view !== "overview";
  document.getElementById("session-view").hidden = route.view !== "session";
  for (const id of ["stream-head", "stream"]) document.getElementById(id).hidden = route.view === "overview";
  document.getElementById("nav-events").classList.toggle("current", route.view === "events");
  document.getElementById("nav-overview").classList.toggle("current", route.view === "overview");
  if (route.view === "overview") refreshOverview().catch(() => {});
  const session = route.view === "session" ? route.session : null;
  if (session !== state.selectedSession) {
    state.selectedSession = session;
    for (const node of document.querySelectorAll(".session")) node.classList.toggle("selected", node.dataset.session === session);
    document.getElementById("session-detail").hidden = true;
    if (session) showSession(session);
    if ((state.filters.session || null) !== session) {
      document.getElementById("f-session").value = session || "";
      applyFilters();
    }
  }
  if (route.event && route.event !== state.selectedSeq) showEvent(route.event);
  if (!route.event && state.selectedSeq !== null) {
    document.getElementById("event-detail").hidden = true;
    state.selectedSeq = null;
  }
}

// Moves the selection one event down (+1) or up (-1) the list.
function moveSelection(step) {
  const rows = [...document.querySelectorAll("tr.event")];
  if (!rows.length) return;
  const at = rows.findIndex((tr) => Number(tr.dataset.seq) === state.selectedSeq);
  const next = rows[at < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, at + step))];
  openEvent(Number(next.dataset.seq));
}

function onKey(event) {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName);
  if (event.key === "Escape") {
    if (typing) event.target.blur();
    else closeEvent();
    return;
  }
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "/") { event.preventDefault(); document.getElementById("f-q").focus(); document.getElementById("f-q").select(); }
  else if (event.key === "j") moveSelection(1);
  else if (event.key === "k") moveSelection(-1);
}

function every(ms, task) {
  const run = () => task().catch(() => {}).finally(() => setTimeout(run, ms));
  run();
}

document.addEventListener("DOMContentLoaded", () => {
  const hookSelect = document.getElementById("f-hook");
  for (const hook of HOOKS) hookSelect.appendChild(el("option", null, hook)).value = hook;
  readFiltersFromUrl();
  const initial = readRoute();
  // A session filter in the query string opens that session's view.
  if (initial.view === "events" && state.filters.session) history.replaceState(null, "", location.pathname + location.search + routeHash("session", state.filters.session, initial.event));
  document.getElementById("filters").addEventListener("submit", (event) => { event.preventDefault(); applyFilters(); });
  document.getElementById("f-hook").addEventListener("change", applyFilters);
  document.getElementById("clear").addEventListener("click", () => {
    for (const name of FILTERS) document.getElementById("f-" + name).value = "";
    applyFilters();
    if (state.selectedSession) go("events", null, null);
  });
  document.getElementById("sort").addEventListener("change", (event) => {
    state.sort = event.target.value;
    writeFiltersToUrl();
    refreshSessions().catch(() => {});
  });
  document.getElementById("stack-by").addEventListener("change", () => refreshOverview().catch(() => {}));
  document.getElementById("sessions").addEventListener("click", (event) => {
    const button = event.target.closest(".session");
    if (button) selectSession(button.dataset.session);
  });
  document.getElementById("events").addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    const tr = event.target.closest("tr.event");
    if (tr) openEvent(Number(tr.dataset.seq));
  });
  document.getElementById("timeline").addEventListener("click", (event) => {
    const target = event.target.closest("[data-seq]");
    if (target) openEvent(Number(target.dataset.seq));
  });
  document.getElementById("ed-close").addEventListener("click", closeEvent);
  document.addEventListener("keydown", onKey);
  document.getElementById("older").addEventListener("click", () => loadOlder().catch(() => {}));
  document.getElementById("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    document.getElementById("pause").textContent = state.paused ? "Resume (" + state.pausedBuffer.length + ")" : "Pause";
    if (!state.paused && state.pausedBuffer.length) { addEvents(state.pausedBuffer, "top"); state.pausedBuffer = []; }
  });
  window.addEventListener("popstate", () => { readFiltersFromUrl(); restart(); applyRoute(); });
  window.addEventListener("hashchange", applyRoute);
  restart();
  applyRoute();
  every(2000, refreshHealth);
  every(10000, refreshOverview);
  every(1000, async () => {
    if (state.sessionsDirty || !state.lastSessions || Date.now() - state.lastSessions > 10000) {
      state.lastSessions = Date.now();
      await refreshSessions();
    }
  });
});
