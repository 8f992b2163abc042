// Formatting and the DOM builders every panel uses. Event content only ever
// reaches the page through `el`, `svg` and `appendHighlighted`, which set
// text (never innerHTML), so a payload holding markup stays inert text.

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  if (text !== undefined && text !== null) node.textContent = String(text);
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
export function completeness(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number") return value > 0 ? value + " events missing" : "complete";
  const missing = value.missing_events ?? value.missing;
  if (typeof missing === "number") return missing > 0 ? missing + " events missing" : "complete";
  return value.state || value.status || "";
}

// Puts `text` into `parent` with every case-insensitive occurrence of `term`
// wrapped in <mark>: text nodes and elements built with DOM calls only.
export function appendHighlighted(parent, text, term) {
  text = String(text);
  if (!term) { parent.appendChild(document.createTextNode(text)); return; }
  const lower = text.toLowerCase(), needle = term.toLowerCase();
  let from = 0;
  for (let at = lower.indexOf(needle); at >= 0; at = lower.indexOf(needle, from)) {
    if (at > from) parent.appendChild(document.createTextNode(text.slice(from, at)));
    parent.appendChild(el("mark", null, text.slice(at, at + needle.length)));
    from = at + needle.length;
  }
  if (from < text.length) parent.appendChild(document.createTextNode(text.slice(from)));
}

// The first string in a payload holding `term`, cut to a window around it.
export function snippet(value, term) {
  const needle = term.toLowerCase();
  const walk = (v) => {
    if (typeof v === "string") {
      const at = v.toLowerCase().indexOf(needle);
      if (at < 0) return null;
      const start = Math.max(0, at - 60);
      return (start ? "…" : "") + v.slice(start, at + needle.length + 120).replace(/\s+/g, " ");
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
