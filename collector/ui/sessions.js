// The sidebar's session list: state badges, titles, where and what it cost,
// waiting sessions called out; redrawn when events say it changed, else
// every ten seconds.

import { api } from "./api.js";
import { completeness, duration, el, money, project, short, STATE_LABELS, tokens } from "./format.js";

const $ = {
  list: document.getElementById("sessions"),
  total: document.getElementById("session-total"),
  machines: document.getElementById("machines-list"),
  sort: document.getElementById("sort"),
};

const sessions = {
  dirty: true,           // an event said the list changed
  lastRefresh: 0,        // when it was last fetched (ms)
  known: new Set(),      // ids listed, so an event of a new session marks the list stale
  sort: "recent",        // the order (sort= in the URL)
  selected: null,        // the open session's id, marked in the list
  drawn: false,          // the first list is marked for the first-paint benchmark
  redrawn: () => {},     // the wiring's hook after each redraw
};

export function whenSessionsRedrawn(callback) { sessions.redrawn = callback; }

export function sortOrder() { return sessions.sort; }

export function setSort(sort) { sessions.sort = sort; $.sort.value = sort; }

// Marks the list stale when an event may change it.
export function noteEvent(event) {
  if (event.session_id && !sessions.known.has(event.session_id)) sessions.dirty = true;
  if (event.state || event.hook === "SessionEnd" || event.hook === "SubagentStart" || event.hook === "SubagentStop") sessions.dirty = true;
}

export function markSelected(id) {
  sessions.selected = id;
  for (const node of $.list.querySelectorAll(".session")) node.classList.toggle("selected", node.dataset.session === id);
}

function sessionButton(session, now) {
  const waiting = session.state === "waiting";
  const button = el("button", "session state-" + session.state + (session.session_id === sessions.selected ? " selected" : ""));
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

export async function refreshSessions() {
  sessions.dirty = false;
  sessions.lastRefresh = Date.now();
  const data = await api("/api/sessions" + (sessions.sort !== "recent" ? "?sort=" + sessions.sort : ""));
  const fragment = document.createDocumentFragment();
  const machines = new Set();
  const waiting = data.sessions.filter((s) => s.state === "waiting").length;
  if (waiting) fragment.appendChild(el("div", "waiting-note", waiting + (waiting === 1 ? " session waits" : " sessions wait") + " for you"));
  for (const session of data.sessions) {
    sessions.known.add(session.session_id);
    machines.add(session.machine);
    fragment.appendChild(sessionButton(session, data.now));
  }
  $.machines.replaceChildren();
  for (const machine of [...machines].sort()) $.machines.appendChild(el("option")).value = machine;
  $.list.replaceChildren(fragment);
  $.total.textContent = "(" + data.total + ")";
  if (!sessions.drawn) { sessions.drawn = true; performance.mark("sessions-drawn"); }
  sessions.redrawn();
}

// Refreshes the list when an event marked it stale or ten seconds passed.
export async function refreshSessionsIfDue() {
  if (sessions.dirty || Date.now() - sessions.lastRefresh > 10000) await refreshSessions();
}
