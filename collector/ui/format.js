// Formatting and the DOM builders every panel uses. Event content only ever
// reaches the page through `el`, `svg`, `textNode`, `setTitle` and
// `appendHighlighted`, which set text (never innerHTML), so a payload
// holding markup stays inert text; and all of them pass the text through
// `reveal`, so what the page shows is what would run.

// Characters that make shown text differ from the text itself: bidi
// controls reorder it (`touch /tmp/x` hidden behind `echo ok`; `gnp.exe`
// shown as `exe.png`), zero-width and other format characters hide in it,
// C0/C1 controls and the Unicode line and paragraph separators break or
// rewrite it, and the tag characters (U+E0000–U+E007F) carry invisible
// ASCII. Tab and line feed are left as they are: they show as space.
const HIDDEN = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u00AD\u061C\u180E\u200B-\u200F\u2028-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB\u{E0000}-\u{E007F}]/u;
const HIDDEN_ALL = new RegExp(HIDDEN.source, "gu");

export const WARNING_MARK = "⚠";
const WARNING = "holds invisible or direction-changing characters, shown as ⟨U+…⟩";

function escapeOf(character) {
  return "⟨U+" + character.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + "⟩";
}

// `text` with every hidden character written as a visible escape
// (`⟨U+202E⟩`), and whether it held any. The one function every text render
// goes through; exported for the panels of other modules (approvals, alerts).
export function reveal(text) {
  text = String(text ?? "");
  if (!HIDDEN.test(text)) return { text, hidden: false };
  return { text: text.replace(HIDDEN_ALL, escapeOf), hidden: true };
}

// The text a one-line place without markup shows (a tooltip, an SVG label):
// escapes, and the warning mark in front when there were any.
export function plain(text) {
  const shown = reveal(text);
  return shown.hidden ? WARNING_MARK + " " + shown.text : shown.text;
}

// Appends `text` to `parent` as text nodes, each hidden character as a
// highlighted escape. Returns whether it held any.
function appendRevealed(parent, text) {
  text = String(text ?? "");
  if (!HIDDEN.test(text)) { parent.appendChild(document.createTextNode(text)); return false; }
  let from = 0;
  for (const match of text.matchAll(HIDDEN_ALL)) {
    if (match.index > from) parent.appendChild(document.createTextNode(text.slice(from, match.index)));
    const escape = document.createElement("span");
    escape.className = "hidden-char";
    escape.textContent = escapeOf(match[0]);
    parent.appendChild(escape);
    from = match.index + match[0].length;
  }
  if (from < text.length) parent.appendChild(document.createTextNode(text.slice(from)));
  return true;
}

// Puts the warning mark at the front of `node`, once.
function warn(node) {
  if (node.firstChild && node.firstChild.className === "hidden-warning") return;
  const mark = document.createElement("span");
  mark.className = "hidden-warning";
  mark.title = "this text " + WARNING;
  mark.textContent = WARNING_MARK + " ";
  node.insertBefore(mark, node.firstChild);
}

// Sets `node`'s text: escapes shown, the warning mark in front.
export function setText(node, text) {
  node.replaceChildren();
  if (appendRevealed(node, text)) warn(node);
  return node;
}

// A text node, for text appended beside elements; escapes written plainly.
export function textNode(text) { return document.createTextNode(plain(text)); }

// Sets a tooltip (`title`), with escapes.
export function setTitle(node, text) { node.title = plain(text); }

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) setText(node, text);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  if (text !== undefined && text !== null) node.textContent = plain(text);
  return node;
}

export const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569"];

export function clock(ms) {
  const date = new Date(ms);
  return date.toLocaleTimeString([], { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return Math.round(ms) + " ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.round(s % 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

export function ago(ms) { return ms === null || ms === undefined ? "never" : duration(Math.max(0, ms)) + " ago"; }

export function bytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KB";
  if (n < 1073741824) return (n / 1048576).toFixed(1) + " MB";
  return (n / 1073741824).toFixed(2) + " GB";
}

export function short(id) { return id ? String(id).slice(0, 8) : ""; }

export function money(usd) {
  if (usd === null || usd === undefined) return "";
  return usd >= 100 ? "$" + usd.toFixed(0) : usd >= 1 ? "$" + usd.toFixed(2) : "$" + usd.toFixed(3);
}

export function tokens(n) {
  if (!n) return "0 tok";
  return n >= 1e6 ? (n / 1e6).toFixed(1) + "M tok" : n >= 1e3 ? Math.round(n / 1e3) + "k tok" : n + " tok";
}

export function project(cwd) { return cwd ? cwd.replace(/\/+$/, "").split("/").pop() || cwd : ""; }

export const STATE_LABELS = { working: "working", waiting: "waiting for you", idle: "idle", failed: "failed",
  compacting: "compacting", ended: "ended", gone_quiet: "gone quiet" };

// The import work may add `completeness`: a word, a count of missing events, or an object saying so.
// An event (or a session with events) whose emitter had a config error: it
// was sent as metadata only until the config is fixed (DESIGN §3 config_error).
export function configFlag(item) {
  return item && item.config_error ? "config error: metadata only, run hooktrail-emit check" : "";
}

export function completeness(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number") return value > 0 ? value + " events missing" : "complete";
  const missing = value.missing_events ?? value.missing;
  if (typeof missing === "number") return missing > 0 ? missing + " events missing" : "complete";
  return value.state || value.status || "";
}

// Puts `text` into `parent` with every case-insensitive occurrence of `term`
// wrapped in <mark>, hidden characters revealed: DOM calls only.
export function appendHighlighted(parent, text, term) {
  text = String(text);
  let hidden = false;
  const append = (node, part) => { hidden = appendRevealed(node, part) || hidden; };
  if (!term) append(parent, text);
  else {
    const lower = text.toLowerCase(), needle = term.toLowerCase();
    let from = 0;
    for (let at = lower.indexOf(needle); at >= 0; at = lower.indexOf(needle, from)) {
      if (at > from) append(parent, text.slice(from, at));
      const mark = document.createElement("mark");
      append(mark, text.slice(at, at + needle.length));
      parent.appendChild(mark);
      from = at + needle.length;
    }
    if (from < text.length) append(parent, text.slice(from));
  }
  if (hidden) warn(parent);
}

// The first string in a payload holding `term`, cut to a window around it.
export function snippet(value, term) {
  const needle = term.toLowerCase();
  const walk = (v) => {
    if (typeof v === "string") {
      const at = v.toLowerCase().indexOf(needle);
      if (at < 0) return null;
      const start = Math.max(0, at - 60);
      return (start ? "…" : "") + v.slice(start, at + needle.length + 120).replace(/[ \t\n\r]+/g, " ");
    }
    if (v && typeof v === "object") for (const item of Object.values(v)) { const found = walk(item); if (found) return found; }
    return null;
  };
  return walk(value);
}

// One line saying what an event is about, for the event list.
export function summary(event) {
  const p = event.payload || {};
  const input = p.tool_input || {};
  const pick = input.command || input.file_path || input.pattern || input.url || input.description || input.prompt;
  switch (event.hook) {
    case "UserPromptSubmit": return p.prompt;
    case "PreToolUse": case "PermissionRequest": return pick;
    case "PostToolUse": return (p.duration_ms !== undefined ? p.duration_ms + " ms · " : "") + (pick || "");
    case "PostToolUseFailure": return p.error || pick;
    case "Notification": return p.message;
    case "SessionStart": return p.source;
    case "SessionEnd": return p.reason;
    case "Stop": case "SubagentStop": return p.last_assistant_message;
    case "SubagentStart": return p.agent_type;
    case "CwdChanged": return (p.old_cwd || "") + " → " + (p.new_cwd || p.cwd || "");
    case "Invalid": return p._raw;
    default: return "";
  }
}

// Where a session's or prompt's time went ({model_ms, tool_ms, waiting_ms},
// issue 22): the figures as text, and a bar of three parts.
export function timeSplitText(time) {
  if (!time) return "";
  const parts = [];
  if (time.model_ms !== null && time.model_ms !== undefined) parts.push("model " + duration(time.model_ms));
  parts.push("tools " + duration(time.tool_ms || 0), "waiting " + duration(time.waiting_ms || 0));
  return parts.join(" · ");
}

export function timeSplitBar(time, width = 120) {
  const parts = [["model", time?.model_ms || 0], ["tool", time?.tool_ms || 0], ["waiting", time?.waiting_ms || 0]];
  const total = parts.reduce((sum, [, ms]) => sum + ms, 0);
  const bar = svg("svg", { width, height: 8, class: "time-bar", role: "img", "aria-label": timeSplitText(time) });
  let x = 0;
  for (const [kind, ms] of parts) {
    if (!total || !ms) continue;
    const w = (ms / total) * width;
    bar.appendChild(svg("rect", { x, y: 0, width: Math.max(1, w), height: 8, class: kind }));
    x += w;
  }
  bar.appendChild(svg("title", {}, timeSplitText(time)));
  return bar;
}
