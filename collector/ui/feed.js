// The event list: the newest page, older pages on demand, live batches on
// top (through live.js), pausing, and the selected row.

import { api } from "./api.js";
import { appendHighlighted, clock, el, reveal, setTitle, short, snippet, summary } from "./format.js";
import { filterQuery, routeHash } from "./route.js";
import { setConnection, startLive, stopLive } from "./live.js";

const MAX_ROWS = 500;          // rows kept in the live list; older ones page in on demand
const PAGE = 200;              // rows per page fetched from /api/events

const $ = {
  events: document.getElementById("events"),
  shown: document.getElementById("shown"),
  older: document.getElementById("older"),
  pause: document.getElementById("pause"),
  tools: document.getElementById("tools-list"),
};

const feed = {
  filters: {},           // the active filters (route.js keeps them in the URL)
  cursor: 0,             // position covered by the feed (resume point)
  oldest: null,          // smallest seq in the list, for "Load older"
  olderCursor: null,     // where the next older page starts
  rows: new Map(),       // seq -> {event, tr}
  generation: 0,         // bumps on filter change; stale callbacks check it
  paused: false,
  pausedBuffer: [],
  selectedSeq: null,
  tools: new Set(),
  noteEvent: () => {},   // the wiring's hook for every new event (sessions.js marks its list stale)
};

export function whenEventArrives(callback) { feed.noteEvent = callback; }

export function filters() { return feed.filters; }

// Whether the list has been started (restart) at least once.
export function feedStarted() { return feed.generation > 0; }

function rowFor(event, fresh) {
  const tr = el("tr", "event" + (fresh ? " fresh" : "") + (event.hook === "PostToolUseFailure" ? " failed" : ""));
  tr.dataset.seq = event.seq;
  const term = feed.filters.q;
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
  setTitle(tr, event.session_id || "");
  return tr;
}

function noteEvent(event) {
  // A name with hidden characters is not offered: a suggestion shows its raw value.
  if (event.tool && !feed.tools.has(event.tool) && !reveal(event.tool).hidden) {
    feed.tools.add(event.tool);
    $.tools.appendChild(el("option")).value = event.tool;
  }
  feed.noteEvent(event);
}

// Newest first: live batches go on top, pages of older events at the bottom.
function addEvents(events, where) {
  const fragment = document.createDocumentFragment();
  const ordered = where === "top" ? events.slice().sort((a, b) => b.seq - a.seq) : events;
  for (const event of ordered) {
    if (feed.rows.has(event.seq)) continue;
    noteEvent(event);
    const tr = rowFor(event, where === "top");
    feed.rows.set(event.seq, { event, tr });
    fragment.appendChild(tr);
    if (feed.oldest === null || event.seq < feed.oldest) feed.oldest = event.seq;
  }
  if (where === "top") {
    $.events.insertBefore(fragment, $.events.firstChild);
    dropOldest();
    setTimeout(() => { for (const tr of $.events.querySelectorAll("tr.fresh")) tr.classList.remove("fresh"); }, 1500);
  } else {
    $.events.appendChild(fragment);
  }
  $.shown.textContent = feed.rows.size + " shown";
}

// Caps the live list: drops the oldest rows; "Load older" brings them back.
function dropOldest() {
  const body = $.events;
  while (feed.rows.size > MAX_ROWS && body.lastChild) {
    const seq = Number(body.lastChild.dataset.seq);
    if (seq === feed.selectedSeq) break;
    feed.rows.delete(seq);
    body.removeChild(body.lastChild);
    feed.oldest = body.lastChild ? Number(body.lastChild.dataset.seq) : null;
  }
}

function liveEvents(events, cursor) {
  if (cursor > feed.cursor) feed.cursor = cursor;
  if (!events.length) return;
  if (feed.paused) { feed.pausedBuffer.push(...events); return; }
  addEvents(events, "top");
}

async function loadLatest(generation) {
  const page = await api("/api/events?" + filterQuery(feed.filters, { order: "desc", limit: PAGE }));
  if (generation !== feed.generation) return;
  addEvents(page.events, "bottom");
  feed.cursor = page.last_seq;
  $.older.hidden = !page.more;
  feed.olderCursor = page.next;
}

export async function loadOlder() {
  const generation = feed.generation;
  const before = Math.min(feed.olderCursor || Infinity, feed.oldest || Infinity);
  if (!isFinite(before)) return;
  const page = await api("/api/events?" + filterQuery(feed.filters, { order: "desc", limit: PAGE, before }));
  if (generation !== feed.generation) return;
  addEvents(page.events, "bottom");
  feed.olderCursor = page.next;
  $.older.hidden = !page.more;
}

// Starts the list over with `filters`: the newest page, then the live feed.
export function restart(filters) {
  if (filters) feed.filters = filters;
  feed.generation += 1;
  stopLive();
  feed.rows.clear();
  feed.oldest = null;
  feed.selectedSeq = null;
  $.events.replaceChildren();
  const generation = feed.generation;
  const current = () => generation === feed.generation;
  loadLatest(generation).then(() => {
    if (!current()) return;
    startLive({ current, query: (extra) => filterQuery(feed.filters, extra), cursor: () => feed.cursor,
      deliver: liveEvents, caughtUp: (cursor) => { if (cursor > feed.cursor) feed.cursor = cursor; },
      // Our cursor is beyond the newest stored seq (the database was replaced): reload from the newest.
      reset: () => { if (current()) restart(); } });
  }, (error) => { setConnection("error: " + error.message, "bad"); setTimeout(() => { if (current()) restart(); }, 3000); });
}

export function togglePause() {
  feed.paused = !feed.paused;
  $.pause.textContent = feed.paused ? "Resume (" + feed.pausedBuffer.length + ")" : "Pause";
  if (!feed.paused && feed.pausedBuffer.length) { addEvents(feed.pausedBuffer, "top"); feed.pausedBuffer = []; }
}

// The listed event `seq`, if the list holds it.
export function listedEvent(seq) { const row = feed.rows.get(seq); return row ? row.event : null; }

export function selectedSeq() { return feed.selectedSeq; }

// Marks row `seq` (null: none) as the open one.
export function select(seq) {
  for (const node of $.events.querySelectorAll("tr.event.selected")) node.classList.remove("selected");
  feed.selectedSeq = seq;
  const row = seq === null ? null : feed.rows.get(seq);
  if (row) { row.tr.classList.add("selected"); row.tr.scrollIntoView({ block: "nearest" }); }
}

// The seq one row down (+1) or up (-1) from the selection, or null.
export function neighbour(step) {
  const rows = [...$.events.querySelectorAll("tr.event")];
  if (!rows.length) return null;
  const at = rows.findIndex((tr) => Number(tr.dataset.seq) === feed.selectedSeq);
  return Number(rows[at < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, at + step))].dataset.seq);
}
