// A session's edits: the diffs its Edit, Write and MultiEdit calls made.

import { api } from "./api.js";
import { clock, el } from "./format.js";
import { routeHash } from "./route.js";

const MAX_LINES = 400;   // diff lines drawn per edit

const $ = {
  box: document.getElementById("sv-edits"),
  count: document.getElementById("sv-edit-count"),
};

// A line diff (longest common subsequence) of two short texts; long ones
// show as all removed then all added.
function lineDiff(before, after) {
  const a = String(before ?? "").split("\n"), b = String(after ?? "").split("\n");
  if (a.length * b.length > 250000) return a.map((l) => ["-", l]).concat(b.map((l) => ["+", l]));
  const table = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--)
    table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
    else if (table[i + 1][j] >= table[i][j + 1]) out.push(["-", a[i++]]);
    else out.push(["+", b[j++]]);
  }
  while (i < a.length) out.push(["-", a[i++]]);
  while (j < b.length) out.push(["+", b[j++]]);
  return out;
}

// The [before, after] pairs an edit event made (before is null for a Write).
function changesOf(event) {
  const input = (event.payload && event.payload.tool_input) || {};
  if (event.tool === "Write") return [[null, input.content]];
  if (event.tool === "MultiEdit") return (input.edits || []).map((edit) => [edit.old_string, edit.new_string]);
  return [[input.old_string, input.new_string]];
}

function editItem(event, session) {
  const input = (event.payload && event.payload.tool_input) || {};
  const item = el("div", "edit");
  const head = el("div", "edit-head");
  const link = el("a", null, "#" + event.seq);
  link.href = routeHash("session", session, event.seq);
  head.append(link, document.createTextNode(" " + event.tool + " " + (input.file_path || "") + " · " + clock(event.ts)));
  item.appendChild(head);
  const pre = el("pre", "diff");
  let shown = 0;
  for (const [before, after] of changesOf(event)) {
    const lines = before === null ? String(after ?? "").split("\n").map((l) => ["+", l]) : lineDiff(before, after);
    for (const [sign, line] of lines) {
      if (shown++ >= MAX_LINES) break;
      pre.appendChild(el("span", sign === "+" ? "add" : sign === "-" ? "del" : "same", sign + " " + line + "\n"));
    }
  }
  if (shown > MAX_LINES) pre.appendChild(el("span", "muted", "… " + (shown - MAX_LINES) + " more lines\n"));
  item.appendChild(pre);
  return item;
}

// Draws session `id`'s edits unless `current()` says the page moved on.
export async function drawEdits(id, current) {
  const pages = await Promise.all(["Edit", "MultiEdit", "Write"].map((tool) =>
    api("/api/events?session=" + encodeURIComponent(id) + "&hook=PreToolUse&tool=" + tool + "&limit=200").catch(() => ({ events: [] }))));
  if (!current()) return;
  const events = pages.flatMap((page) => page.events).sort((x, y) => x.seq - y.seq);
  const fragment = document.createDocumentFragment();
  for (const event of events) fragment.appendChild(editItem(event, id));
  if (!events.length) fragment.appendChild(el("p", "muted", "no edits in this session"));
  $.box.replaceChildren(fragment);
  $.count.textContent = "(" + events.length + ")";
}
