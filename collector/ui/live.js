// The live feed: a WebSocket from the feed's cursor, else polling
// /api/events when the socket never opens. The feed (feed.js) says what to
// ask for and takes what arrives; this module only keeps the line up.

import { api, TOKEN } from "./api.js";

const $ = { conn: document.getElementById("conn") };

const live = {
  socket: null,
  openedOnce: false,   // a socket that opened once is retried, never given up for polling
  failedOpens: 0,
  polling: false,
};

export function setConnection(text, tone) {
  $.conn.textContent = text;
  $.conn.className = "value " + tone;
}

// Closes the socket of an earlier feed (a filter change).
export function stopLive() {
  if (live.socket) { const socket = live.socket; live.socket = null; socket.close(); }
}

// `feed` is { current(): whether this feed is still the page's, query(extra):
// its filters as a query string, cursor(): the resume point, deliver(events,
// cursor), caughtUp(cursor) }.
export function startLive(feed) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = feed.query({ after: feed.cursor(), token: TOKEN || null });
  let socket;
  try {
    socket = new WebSocket(scheme + "//" + location.host + "/ws?" + query);
  } catch (error) {
    return startPolling(feed);
  }
  live.socket = socket;
  let opened = false;
  setConnection("connecting", "warn");
  socket.onopen = () => { opened = true; live.openedOnce = true; live.failedOpens = 0; setConnection("replaying", "warn"); };
  socket.onmessage = (message) => {
    if (!feed.current()) return;
    const data = JSON.parse(message.data);
    if (data.type === "events") feed.deliver(data.events, data.cursor);
    else if (data.type === "live") { feed.caughtUp(data.cursor); setConnection("live", "good"); }
  };
  socket.onclose = (closing) => {
    if (live.socket === socket) live.socket = null;
    if (!feed.current()) return;
    if (!opened) live.failedOpens += 1;
    if (!live.openedOnce && live.failedOpens >= 2) return startPolling(feed);
    const wait = Math.min(10000, 500 * Math.pow(2, Math.min(live.failedOpens, 5)));
    setConnection("reconnecting" + (closing.reason ? " (" + closing.reason + ")" : ""), "warn");
    setTimeout(() => { if (feed.current()) startLive(feed); }, opened ? 200 : wait);
  };
}

async function startPolling(feed) {
  if (live.polling) return;
  live.polling = true;
  setConnection("polling", "warn");
  while (feed.current()) {
    try {
      const page = await api("/api/events?" + feed.query({ after: feed.cursor(), limit: 1000 }));
      if (!feed.current()) break;
      feed.deliver(page.events, page.next);
      setConnection("polling", "good");
      if (page.more) continue;
    } catch (error) {
      setConnection("polling: " + error.message, "bad");
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  live.polling = false;
}
