// hooktrail's page: native ES modules, no framework, no build step. This
// module only wires the others together (as TodoMVC's vanilla example
// does): it reads the URL, routes between the views, and connects the
// controls to the modules that draw. Each module looks its elements up
// once and renders event content as text only (see format.js).
//
// A new panel is a module of its own exporting an `init(page)`; add it to
// FEATURES below. `page` is what a panel may use from the rest of the page.

import { api, post, signIn, signInProblem } from "./api.js";
import { init as approvals } from "./approvals.js";
import { init as initBudgets } from "./budgets.js";
import { feedStarted, filters, loadOlder, neighbour, restart, selectedSeq, togglePause, whenEventArrives } from "./feed.js";
import { focusSearch, formFilters, loadHooks, setSessionFilter, showFilters, whenFiltersChange } from "./filters.js";
import { hideEvent, showEvent } from "./detail.js";
import { setConnection } from "./live.js";
import { refreshHealth } from "./health.js";
import { refreshOverview } from "./overview.js";
import { go, openEvent, readQuery, readRoute, routeHash, whenRouteChanges, writeQuery } from "./route.js";
import { selectedSession, sessionFirstDrawn, setSession, showSession } from "./session.js";
import { markSelected, noteEvent, refreshSessions, refreshSessionsIfDue, setSort, sortOrder, whenSessionsRedrawn } from "./sessions.js";

const FEATURES = [approvals, initBudgets];

const $ = {
  overview: document.getElementById("overview"),
  sessionView: document.getElementById("session-view"),
  streamHead: document.getElementById("stream-head"),
  stream: document.getElementById("stream"),
  navEvents: document.getElementById("nav-events"),
  navOverview: document.getElementById("nav-overview"),
};

function applyFilters() {
  const chosen = formFilters();
  writeQuery(chosen, sortOrder());
  restart(chosen);
}

function readUrl() {
  const { filters: chosen, sort } = readQuery();
  showFilters(chosen);
  setSort(sort);
  return chosen;
}

// Shows what the hash names: the overview, a session (its events filtered
// to it), an open event.
function applyRoute() {
  const route = readRoute();
  $.overview.hidden = route.view !== "overview";
  $.sessionView.hidden = route.view !== "session";
  $.streamHead.hidden = $.stream.hidden = route.view === "overview";
  $.navEvents.classList.toggle("current", route.view === "events");
  $.navOverview.classList.toggle("current", route.view === "overview");
  if (route.view === "overview") refreshOverview().catch(() => {});
  const session = route.view === "session" ? route.session : null;
  if (session !== selectedSession()) {
    markSelected(session);
    setSession(session);
    if ((filters().session || null) !== session) {
      setSessionFilter(session);
      applyFilters();
    }
  }
  if (route.event && route.event !== selectedSeq()) showEvent(route.event);
  if (!route.event && selectedSeq() !== null) hideEvent();
}

function closeEvent() {
  hideEvent();
  const route = readRoute();
  if (route.event) go(route.view, route.session, null);
}

function onKey(event) {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName);
  if (event.key === "Escape") {
    if (typing) event.target.blur();
    else closeEvent();
    return;
  }
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  const step = { j: 1, k: -1 }[event.key];
  if (event.key === "/") { event.preventDefault(); focusSearch(); }
  else if (step) { const seq = neighbour(step); if (seq !== null) openEvent(seq); }
}

// Clicks anywhere inside `id` on an element matching `selector`.
function onClick(id, selector, action) {
  document.getElementById(id).addEventListener("click", (event) => {
    const target = event.target.closest(selector);
    if (target) action(target, event);
  });
}

function every(ms, task) {
  const run = () => task().catch(() => {}).finally(() => setTimeout(run, ms));
  run();
}

function wire() {
  whenRouteChanges(applyRoute);
  whenEventArrives(noteEvent);
  whenSessionsRedrawn(() => { const id = selectedSession(); if (id) showSession(id); });
  whenFiltersChange({ apply: applyFilters, clear: () => { applyFilters(); if (selectedSession()) go("events", null, null); } });
  document.getElementById("sort").addEventListener("change", (event) => {
    setSort(event.target.value);
    writeQuery(filters(), sortOrder());
    refreshSessions().catch(() => {});
  });
  document.getElementById("stack-by").addEventListener("change", () => refreshOverview().catch(() => {}));
  onClick("sessions", ".session", (button) => go("session", button.dataset.session, null));
  onClick("events", "tr.event", (tr, event) => { if (!event.target.closest("a")) openEvent(Number(tr.dataset.seq)); });
  onClick("timeline", "[data-seq]", (target) => openEvent(Number(target.dataset.seq)));
  document.getElementById("ed-close").addEventListener("click", closeEvent);
  document.getElementById("older").addEventListener("click", () => loadOlder().catch(() => {}));
  document.getElementById("pause").addEventListener("click", togglePause);
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => { restart(readUrl()); applyRoute(); });
  window.addEventListener("hashchange", applyRoute);
}

async function start() {
  await signIn();
  if (signInProblem()) setConnection("sign-in: " + signInProblem(), "bad");
  // Before the URL is read: a hook filter in it needs its option.
  await loadHooks().catch(() => {});
  const chosen = readUrl();
  const initial = readRoute();
  // A session filter in the query string opens that session's view.
  if (initial.view === "events" && chosen.session) history.replaceState(null, "", location.pathname + location.search + routeHash("session", chosen.session, initial.event));
  wire();
  // A session's route starts the feed filtered to it; another starts it
  // here (starting it first drew a page of every session's events only to
  // replace it).
  applyRoute();
  if (!feedStarted()) restart(chosen);
  every(2000, refreshHealth);
  every(10000, refreshOverview);
  // Opened on a session, the page draws that session's view first and the
  // sessions list after it (or after 3 s): both at once took the view of a
  // 20,000-event session twice as long (issue 21 item 4).
  const opened = readRoute().view === "session"
    ? Promise.race([sessionFirstDrawn, new Promise((resolve) => setTimeout(resolve, 3000))]) : Promise.resolve();
  opened.then(() => every(1000, refreshSessionsIfDue));
  const page = { api, post, go, openEvent, every };
  for (const init of FEATURES) init(page);
}

start();
