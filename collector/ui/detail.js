// The event detail pane: one event's facts and its whole payload, as text.

import { api } from "./api.js";
import { listedEvent, select } from "./feed.js";

const $ = {
  pane: document.getElementById("event-detail"),
  seq: document.getElementById("ed-seq"),
  meta: document.getElementById("ed-meta"),
  payload: document.getElementById("payload"),
  hint: document.getElementById("detail-hint"),
  sessionPane: document.getElementById("session-detail"),
};

export async function showEvent(seq) {
  let event = listedEvent(seq);
  if (!event) {
    // An event not in the list (a timeline span, a link): read it by its seq.
    const page = await api("/api/events?after=" + (seq - 1) + "&before=" + (seq + 1) + "&limit=1").catch(() => ({ events: [] }));
    event = page.events[0];
    if (!event) return;
  }
  select(seq);
  const e = event;
  $.seq.textContent = "#" + e.seq;
  $.meta.textContent = e.hook + (e.tool ? " · " + e.tool : "") + " · " + new Date(e.ts).toISOString() +
    " · " + e.machine + " · session " + (e.session_id || "none") + " · agent " + (e.agent_id || "main") + " · via " + e.source + " · id " + e.id;
  $.payload.textContent = JSON.stringify(e.payload, null, 2);
  $.pane.hidden = false;
  $.hint.hidden = true;
}

export function hideEvent() {
  $.pane.hidden = true;
  select(null);
  $.hint.hidden = !$.sessionPane.hidden;
}
