// The header's health figures, from /api/health.

import { api } from "./api.js";
import { ago, bytes } from "./format.js";

const IDS = ["h-redis", "h-pending", "h-queue", "h-commit", "h-stored", "h-dupes", "h-rejected", "h-search", "h-db"];
const $ = Object.fromEntries(IDS.map((id) => [id, document.getElementById(id)]));

function set(id, text, tone) {
  $[id].textContent = text;
  $[id].className = "value" + (tone ? " " + tone : "");
}

export async function refreshHealth() {
  const h = await api("/api/health");
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
  // The search index follows the writer: how many stored events it has yet to take.
  const behind = h.search_index ? h.search_index.behind : 0;
  set("h-search", behind > 0 ? behind + " behind" : "current", behind > 10000 ? "warn" : "");
  set("h-db", bytes(h.database.bytes + h.database.wal_bytes));
}
