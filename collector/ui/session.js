// One session: its title and facts above the timeline, its agents, tool
// calls and failures in the side pane, its prompts and edits below. One
// render function per panel; showSession fetches once and calls them.

import { api } from "./api.js";
import { completeness, configFlag, duration, el, money, project, setText, setTitle, short, STATE_LABELS, textNode, tokens } from "./format.js";
import { drawTimeline } from "./timeline.js";
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
  hint: document.getElementById("detail-hint"),
  eventPane: document.getElementById("event-detail"),
};

let selected = null;     // the open session's id; a late answer for another is dropped

export function selectedSession() { return selected; }

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

function renderFailures(failures) {
  $.failures.replaceChildren();
  for (const call of failures) $.failures.appendChild(el("li", "bad", call.tool + ": " + (call.error || "failed")));
  if (!failures.length) $.failures.appendChild(el("li", "muted", "none"));
}

function renderPrompts(prompts) {
  $.prompts.replaceChildren();
  for (const prompt of prompts) {
    const tr = el("tr", prompt.outcome === "failed" ? "failed" : "");
    const text = el("td", "prompt-text", (prompt.prompt || "").replace(/[ \t\n\r]+/g, " ").slice(0, 200));
    setTitle(text, prompt.prompt || "");
    tr.appendChild(text);
    for (const value of [prompt.duration_ms === null ? "running" : duration(prompt.duration_ms),
      prompt.tool_calls + (prompt.tool_failures ? " (" + prompt.tool_failures + " failed)" : ""),
      prompt.tokens ? tokens(prompt.tokens) : "", money(prompt.cost_usd), prompt.outcome]) tr.appendChild(el("td", null, value));
    $.prompts.appendChild(tr);
  }
  if (!prompts.length) $.prompts.appendChild(el("tr")).appendChild(el("td", "muted", "no prompts recorded"));
}

// Fetches session `id` and draws every panel, unless another session was
// opened meanwhile.
export async function showSession(id) {
  let data;
  try { data = await api("/api/sessions/" + encodeURIComponent(id)); } catch (error) { return; }
  if (id !== selected) return;
  renderHeader(data.session);
  renderAgents(data.agents);
  renderCalls(data.tool_calls);
  renderFailures(data.failures);
  renderPrompts(data.prompts);
  $.pane.hidden = false;
  $.hint.hidden = !$.eventPane.hidden;
  const current = () => id === selected;
  await Promise.all([drawTimeline(id, current), drawEdits(id, current)]);
  // For scripts/bench-ui: the moment a whole session view is drawn.
  if (current()) performance.mark("session-drawn");
}
