// Alerts on the page (issue 20): the tab title counts the sessions waiting
// for you, an opt-in browser notification fires when a session starts
// waiting or fails, and a list shows the recent alerts the collector sent
// (GET /api/alerts) with their delivery state. A module of its own, loaded
// after app.js; everything from the server is put in the page with
// textContent only.

const POLL_MS = 3000;
const OPT_IN_KEY = "hooktrail-notify";
import { authHeaders } from "./api.js";
import { setTitleCount } from "./title.js";

async function getJson(path) {
  const response = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  if (!response.ok) throw new Error(response.status + " " + response.statusText);
  return response.json();
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function optedIn() {
  return localStorage.getItem(OPT_IN_KEY) === "on" && "Notification" in window && Notification.permission === "granted";
}

// The sessions last seen, id -> state, to notice a session entering
// "waiting" or "failed"; null until the first poll (which notifies nothing).
let known = null;

function notify(session) {
  const what = session.state === "waiting" ? "is waiting for you" : "failed";
  const title = "hooktrail: session " + what;
  const body = (session.title || session.session_id) + " on " + session.machine + (session.state_detail ? " · " + session.state_detail : "");
  try {
    const note = new Notification(title, { body: body.slice(0, 200), tag: "hooktrail-" + session.session_id + "-" + session.state });
    note.onclick = () => { window.focus(); location.hash = "#/session/" + encodeURIComponent(session.session_id); };
    document.documentElement.dataset.lastNotification = title;
  } catch (error) {
    // A browser that refuses notifications outside a service worker: the
    // title count still says it.
  }
}

async function pollSessions() {
  const answer = await getJson("/api/sessions?limit=500");
  const sessions = answer.sessions || [];
  const waiting = sessions.filter((session) => session.state === "waiting").length;
  setTitleCount("waiting", waiting);
  const next = new Map(sessions.map((session) => [session.session_id, session.state]));
  if (known !== null && optedIn()) {
    for (const session of sessions) {
      const before = known.get(session.session_id);
      if ((session.state === "waiting" || session.state === "failed") && before !== session.state) notify(session);
    }
  }
  known = next;
}

function drawAlerts(list, alerts) {
  list.replaceChildren();
  if (alerts.length === 0) list.append(el("li", "muted", "none yet"));
  for (const alert of alerts) {
    const item = el("li");
    const when = new Date(alert.created_at).toLocaleTimeString();
    item.append(el("span", "muted", when + " "), el("strong", null, alert.destination), el("span", null, " " + alert.state));
    if (alert.attempts > 0 && alert.state !== "sent") item.append(el("span", "muted", " (" + alert.attempts + " failed attempts)"));
    const summary = alert.alert && alert.alert.summary;
    if (summary) item.append(el("div", "muted", summary));
    item.title = alert.rule + (alert.last_error ? " · last error: " + alert.last_error : "");
    list.append(item);
  }
}

function buildPanel() {
  const box = el("details");
  box.id = "alerts-box";
  const summary = el("summary", null, "Alerts");
  const button = el("button", null, "Notify me");
  button.type = "button";
  button.id = "alerts-notify";
  const status = el("span", "muted");
  const list = el("ul", "compact");
  list.id = "alerts-list";
  const showStatus = () => {
    if (!("Notification" in window)) status.textContent = " this browser has no notifications";
    else if (optedIn()) { status.textContent = " notifications on"; button.textContent = "Stop notifying"; }
    else { status.textContent = Notification.permission === "denied" ? " notifications blocked" : ""; button.textContent = "Notify me"; }
  };
  button.addEventListener("click", async () => {
    if (optedIn()) localStorage.removeItem(OPT_IN_KEY);
    else if ("Notification" in window && (await Notification.requestPermission()) === "granted") localStorage.setItem(OPT_IN_KEY, "on");
    showStatus();
  });
  showStatus();
  box.append(summary, button, status, list);
  (document.getElementById("sidebar") || document.body).append(box);
  return list;
}

let started = false;

export function init() {
  if (started) return;
  started = true;
  const list = buildPanel();
  const tick = async () => {
    try { await pollSessions(); } catch (error) { /* the main page shows the connection state */ }
    try { drawAlerts(list, (await getJson("/api/alerts?limit=20")).alerts || []); } catch (error) { list.replaceChildren(el("li", "muted", "alerts unavailable")); }
  };
  tick();
  setInterval(tick, POLL_MS);
}

init();
