// The URL is the page's state: the filters and the session sort in the query
// string, the view in the hash: #/ (events), #/overview, #/session/ID, and
// #/session/ID/event/SEQ or #/event/SEQ with an event's payload open.

export const FILTERS = ["machine", "session", "agent", "hook", "tool", "q"];
const SORTS = ["cost", "duration"];

// The filters and sort the query string names.
export function readQuery() {
  const params = new URLSearchParams(location.search);
  const filters = {};
  for (const name of FILTERS) {
    const value = params.get(name);
    if (value) filters[name] = value;
  }
  const sort = SORTS.includes(params.get("sort")) ? params.get("sort") : "recent";
  return { filters, sort };
}

// A query string of the filters plus `extra` (null values left out).
export function filterQuery(filters, extra) {
  const params = new URLSearchParams();
  for (const name of FILTERS) if (filters[name]) params.set(name, filters[name]);
  for (const [name, value] of Object.entries(extra || {})) if (value !== null && value !== undefined) params.set(name, value);
  return params.toString();
}

export function writeQuery(filters, sort) {
  const query = filterQuery(filters, sort !== "recent" ? { sort } : {});
  history.replaceState(null, "", location.pathname + (query ? "?" + query : "") + location.hash);
}

export function readRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const route = { view: "events", session: null, event: null };
  if (parts[0] === "overview") route.view = "overview";
  if (parts[0] === "session" && parts[1]) { route.view = "session"; route.session = parts[1]; }
  const at = parts.indexOf("event");
  if (at >= 0 && parts[at + 1]) route.event = Number(parts[at + 1]);
  return route;
}

export function routeHash(view, session, event) {
  let hash = view === "overview" ? "#/overview" : session ? "#/session/" + encodeURIComponent(session) : "#/";
  if (event) hash += (hash === "#/" ? "" : "/") + "event/" + event;
  return hash;
}

let onRouteChange = () => {};

// The wiring (app.js) says what a route change draws.
export function whenRouteChanges(callback) { onRouteChange = callback; }

export function go(view, session, event) {
  const hash = routeHash(view, session, event);
  const current = readRoute();
  // Moving between events of one view replaces the entry; a new view adds one.
  const method = current.view === view && current.session === session ? "replaceState" : "pushState";
  if (location.hash !== hash) history[method](null, "", location.pathname + location.search + hash);
  onRouteChange();
}

// Opens an event in the current view and puts it in the URL.
export function openEvent(seq) {
  const route = readRoute();
  go(route.view, route.session, seq);
}
