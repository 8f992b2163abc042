// One session: its title and facts above the timeline, its agents, tool
// calls and failures in the side pane, its prompts and edits below. One
// render function per panel; showSession fetches once and calls them.

import { api } from "./api.js";
import { completeness, configFlag, duration, el, money, project, setText, setTitle, short, STATE_LABELS, textNode, timeSplitBar, timeSplitText, tokens } from "./format.js";
import { drawTimeline, fetchTimeline } from "./timeline.js";
import { drawEdits } from "./edits.js";

const $ = {
  pane: document.getElementById("session-detail"),
  id: document.getElementById("sd-id"),
  meta: document.getElementById("sd-meta"),
  agents: document.getElementById("sd-agents"),
  calls: document.getElementById("sd-calls"),
  failures: document.getElementById("sd-failures"),
  title: document.getElementById("sv-title"),
  summary: document.getElementById("sv-meta"),
  prompts: document.getElementById("sv-prompts"),
  time: document.getElementById("sv-time"),
  hint: document.getElementById("detail-hint"),
  eventPane: document.getElementById("event-detail"),
};

let selected = null;     // the open session's id; a late answer for another is dropped

export function selectedSession() { return selected; }

// Resolves once a session view has been drawn (or failed to): the page
// opened on a session draws the sessions list after it (app.js).
let firstDrawn;
export const sessionFirstDrawn = new Promise((resolve) => { firstDrawn = resolve; });

// Opens session `id` (null: none); the side pane stays hidden until drawn.
export function setSession(id) {
  selected = id;
  $.pane.hidden = true;
  if (id) showSession(id);
}

function renderHeader(s) {
  setText($.id, short(s.session_id));
  setTitle($.id, s.session_id);
  setText($.meta, s.machine + " · " + (s.cwd || "") + " · " + s.status + " · " +
    duration(s.duration_ms) + " · " + s.event_count + " events" + (s.end_reason ? " · ended: " + s.end_reason : ""));
  $.title.replaceChildren(el("span", "badge " + s.state, STATE_LABELS[s.state] || s.state), textNode(" " + (s.title || short(s.session_id))));
  setText($.summary, [project(s.cwd), s.machine, s.model, money(s.cost_usd), s.tokens ? tokens(s.tokens) : "",
    duration(s.duration_ms), s.event_count + " events", completeness(s.completeness), configFlag(s), s.state_detail].filter(Boolean).join(" · "));
}

// The agent tree: the main agent at the root, subagents under the agent that started them.
function renderAgents(agents) {
  const children = new Map();
  for (const agent of agents) {
    const parent = agent.parent_agent_id || "main";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(agent);
  }
  const label = (agent) => (agent.agent_type || "agent") + " " + short(agent.agent_id) + " · " +
    agent.event_count + " events" + (agent.stopped_ts ? " · " + duration(agent.stopped_ts - agent.started_ts) : " · running") +
    (agent.state ? " · " + (STATE_LABELS[agent.state] || agent.state) : "") + (agent.cost_usd ? " · " + money(agent.cost_usd) : "");
  const build = (id, text, depth) => {
    const li = el("li", null, text);
    const kids = children.get(id) || [];
    if (kids.length && depth < 20) {
      const ul = el("ul");
      for (const agent of kids) ul.appendChild(build(agent.agent_id, label(agent), depth + 1));
      li.appendChild(ul);
    }
    return li;
  };
  $.agents.replaceChildren(build("main", "main agent", 0));
}

function renderCalls(calls) {
  $.calls.replaceChildren();
  for (const call of calls.slice(0, 100)) {
    const tr = el("tr", call.outcome === "failed" ? "failed" : "");
    for (const value of [call.tool, call.duration_ms === null ? "…" : Math.round(call.duration_ms), call.outcome, call.agent_id ? short(call.agent_id) : "main"]) {
      tr.appendChild(el("td", null, value));
    }
    $.calls.appendChild(tr);
  }
}

// Rows drawn at first in a long list: laying out the 500 prompts the API
// lists took 120 ms of a 20,000-event session's view (issue 21 item 4).
const ROWS_SHOWN = 100;

// Appends row(item) to `box` for the first ROWS_SHOWN items, then
// holder(button): a "show N more" button in a row of the list, whose click
// draws the rest in its place.
function appendCapped(box, items, row, holder) {
  for (const item of items.slice(0, ROWS_SHOWN)) box.appendChild(row(item));
  if (items.length <= ROWS_SHOWN) return;
  const more = el("button", "more", "show " + (items.length - ROWS_SHOWN) + " more");
  const line = holder(more);
  more.addEventListener("click", () => {
    line.remove();
    for (const item of items.slice(ROWS_SHOWN)) box.appendChild(row(item));
  });
  box.appendChild(line);
}

function renderFailures(failures) {
  $.failures.replaceChildren();
  appendCapped($.failures, failures, (call) => el("li", "bad", call.tool + ": " + (call.error || "failed")), (more) => {
    const li = el("li");
    li.appendChild(more);
    return li;
  });
  if (!failures.length) $.failures.appendChild(el("li", "muted", "none"));
}

// Where the session's time went: the figures and a bar (model, tools, waiting).
function renderTime(time) {
  $.time.hidden = !time;
  if (!time) return;
  $.time.replaceChildren(timeSplitBar(time, 160), textNode(" " + timeSplitText(time)));
}

function renderPrompts(prompts) {
  $.prompts.replaceChildren();
  appendCapped($.prompts, prompts, promptRow, (more) => {
    const td = el("td");
    td.colSpan = 7;
    td.appendChild(more);
    const tr = el("tr");
    tr.appendChild(td);
    return tr;
  });
  if (!prompts.length) $.prompts.appendChild(el("tr")).appendChild(el("td", "muted", "no prompts recorded"));
}

function promptRow(prompt) {
  const tr = el("tr", prompt.outcome === "failed" ? "failed" : "");
  const text = el("td", "prompt-text", (prompt.prompt || "").replace(/[ \t\n\r]+/g, " ").slice(0, 200));
  setTitle(text, prompt.prompt || "");
  tr.appendChild(text);
  tr.appendChild(el("td", null, prompt.duration_ms === null ? "running" : duration(prompt.duration_ms)));
  const time = el("td");
  time.appendChild(timeSplitBar(prompt.time, 80));
  setTitle(time, timeSplitText(prompt.time));
  tr.appendChild(time);
  for (const value of [prompt.tool_calls + (prompt.tool_failures ? " (" + prompt.tool_failures + " failed)" : ""),
    prompt.tokens ? tokens(prompt.tokens) : "", money(prompt.cost_usd), prompt.outcome]) tr.appendChild(el("td", null, value));
  return tr;
}

// A draw of the session being drawn waits for that one and then runs once
// more (the data may have changed): on load, the route's draw and the
// sessions list's redraw ran at once and interleaved their work, which
// doubled the time to the first whole view of a long session.
let running = null;

// Fetches session `id` and draws every panel, unless another session was
// opened meanwhile.
export async function showSession(id) {
  if (running && running.id === id) {
    running.again = true;
    return;
  }
  const draw = { id, again: false };
  running = draw;
  try {
    do {
      draw.again = false;
      await drawSession(id);
    } while (draw.again && id === selected);
  } finally {
    if (running === draw) running = null;
    firstDrawn();
  }
}

async function drawSession(id) {
  const current = () => id === selected;
  // The timeline and the edits are asked for with the session, not after
  // it: on a long session each answer takes tens of milliseconds.
  const timeline = fetchTimeline(id);
  timeline.catch(() => {});
  const edits = drawEdits(id, current);
  let data;
  try { data = await api("/api/sessions/" + encodeURIComponent(id)); } catch (error) { return; }
  if (id !== selected) return;
  renderHeader(data.session);
  renderAgents(data.agents);
  renderCalls(data.tool_calls);
  renderFailures(data.failures);
  renderTime(data.time);
  renderPrompts(data.prompts);
  $.pane.hidden = false;
  $.hint.hidden = !$.eventPane.hidden;
  await Promise.all([drawTimeline(id, current, timeline), edits]);
  // For scripts/bench-ui: the moment a whole session view is drawn.
  if (current()) performance.mark("session-drawn");
}
