// Remote approval on the page (issue 18): the pending PermissionRequests
// whose hooks wait, each with its whole tool input as text, Approve / Deny
// with a reason (keys a / d), the remaining time, the pending count at the
// top and in the tab title, and the audit trail of decisions.
//
// What is approved must be what runs (issue 24): event text is put in the
// page with textContent only, and every invisible, bidi or control
// character is shown as a visible escape (⟨U+202E⟩) with a warning; the
// input is never shortened, and line breaks and long padding are marked.
//
// A panel module: app.js lists its init(page) in FEATURES.

import { authHeaders } from "./api.js";
import { el } from "./format.js";
import { setTitleCount } from "./title.js";

// The request list is polled (a partial index makes it cheap): a new
// request shows within a second, a decision made elsewhere too.
const REFRESH_MS = 1000;

// Bidi controls, zero-width characters, C0/C1 controls (but tab and line
// feed, which are marked separately), line and paragraph separators.
const HIDDEN = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u061C\u200B-\u200F\u202A-\u202E\u2028\u2029\u2060-\u2069\uFEFF]/u;
const LONG_PADDING = /[ \t]{8,}/;

async function call(method, path, body) {
  const headers = { "Content-Type": "application/json", ...authHeaders() };
  const response = await fetch(path, {
    method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  return { status: response.status, body: answer };
}

function codePoint(char) {
  return "⟨U+" + char.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + "⟩";
}

// Renders `text` into `parent` exactly: hidden characters as escapes, line
// breaks marked (⏎) and kept, long runs of spaces or tabs marked. Returns
// whether anything had to be escaped.
export function renderExact(parent, text) {
  let escaped = false;
  let plain = "";
  const flush = () => { if (plain) { parent.appendChild(document.createTextNode(plain)); plain = ""; } };
  const mark = (label, title) => {
    flush();
    const span = el("span", "escape", label);
    if (title) span.title = title;
    parent.appendChild(span);
  };
  const chars = Array.from(String(text));
  for (let index = 0; index < chars.length; index++) {
    const char = chars[index];
    if (char === "\n") { mark("⏎", "line break"); plain += "\n"; continue; }
    if (char === "\t" || char === " ") {
      let run = index;
      while (run < chars.length && (chars[run] === " " || chars[run] === "\t")) run++;
      const padding = chars.slice(index, run).join("");
      if (LONG_PADDING.test(padding)) {
        mark("⟨" + padding.length + " blanks⟩", "padding that could push text out of view");
        index = run - 1;
        escaped = true;
      } else {
        plain += char === "\t" ? "⇥" : char;
      }
      continue;
    }
    if (HIDDEN.test(char)) { mark(codePoint(char), "invisible or direction-changing character"); escaped = true; continue; }
    plain += char;
  }
  flush();
  return escaped;
}

function exactBlock(label, text) {
  const box = el("div", "ap-field");
  box.appendChild(el("div", "ap-label", label));
  const pre = el("pre", "ap-exact");
  const escaped = renderExact(pre, text === undefined || text === null ? "" : text);
  if (escaped) box.appendChild(el("p", "ap-warning", "⚠ holds invisible, direction-changing or padding characters, shown as ⟨…⟩: read it exactly"));
  box.appendChild(pre);
  return { box, escaped };
}

// The tool input, whole: the fields a person must read first, then the rest.
function inputView(tool, input) {
  const box = el("div", "ap-input");
  const fields = input && typeof input === "object" ? input : { input };
  const first = {
    Bash: ["command", "description"], Edit: ["file_path", "old_string", "new_string"],
    MultiEdit: ["file_path", "edits"], Write: ["file_path", "content"], Read: ["file_path"],
    WebFetch: ["url", "prompt"], NotebookEdit: ["notebook_path", "new_source"],
  }[tool] || [];
  const order = first.filter((name) => name in fields).concat(Object.keys(fields).filter((name) => !first.includes(name)));
  for (const name of order) {
    const value = fields[name];
    const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    box.appendChild(exactBlock(name, text).box);
  }
  return box;
}

function remaining(ms) {
  if (ms <= 0) return "expired";
  const seconds = Math.ceil(ms / 1000);
  return seconds >= 60 ? Math.floor(seconds / 60) + " min " + (seconds % 60) + " s left" : seconds + " s left";
}

function clock(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "";
}

const state = { pending: [], decided: [], skew: 0, busy: false, root: null };

function requestCard(request) {
  const card = el("article", "ap-request");
  card.dataset.eventId = request.event_id;
  const head = el("div", "ap-head");
  head.appendChild(el("strong", "ap-tool", request.tool || "?"));
  head.appendChild(el("span", "muted", " on " + (request.machine || "?") + " · session " + String(request.session_id || "").slice(0, 8)
    + (request.agent_id ? " · agent " + String(request.agent_id).slice(0, 8) : "") + (request.cwd ? " · " + request.cwd : "")));
  const left = el("span", "ap-remaining");
  left.dataset.expiresAt = request.expires_at;
  head.appendChild(left);
  card.appendChild(head);
  card.appendChild(inputView(request.tool, request.tool_input));
  const form = el("form", "ap-actions");
  const reason = el("input", "ap-reason");
  reason.placeholder = "reason (shown to the agent on a deny)";
  reason.maxLength = 1000;
  reason.setAttribute("aria-label", "reason");
  const approve = el("button", "ap-approve", "Approve (a)");
  approve.type = "button";
  const deny = el("button", "ap-deny", "Deny (d)");
  deny.type = "button";
  const outcome = el("span", "ap-outcome muted");
  approve.addEventListener("click", () => decide(request.event_id, "allow", reason.value, outcome));
  deny.addEventListener("click", () => decide(request.event_id, "deny", reason.value, outcome));
  form.addEventListener("submit", (event) => event.preventDefault());
  form.append(reason, approve, deny, outcome);
  card.appendChild(form);
  return card;
}

async function decide(eventId, decision, reason, outcome) {
  if (state.busy) return;
  state.busy = true;
  try {
    const answer = await call("POST", "/api/approvals/" + encodeURIComponent(eventId), { decision, reason });
    if (outcome) {
      outcome.textContent = answer.status === 200
        ? (decision === "allow" ? "approved" : "denied") + " · " + (answer.body.delivered === "hook" ? "the hook took it" : "the hook did not take it")
        : answer.status + ": " + (answer.body.error || "refused");
    }
  } finally {
    state.busy = false;
    refresh().catch(() => {});
  }
}

function drawCount() {
  const count = state.pending.length;
  const badge = document.getElementById("ap-count");
  if (badge) {
    badge.textContent = count ? count + " waiting for you" : "none waiting";
    badge.className = count ? "ap-count waiting" : "ap-count muted";
  }
  setTitleCount("approvals", count);
}

function drawPending() {
  const list = document.getElementById("ap-pending");
  const shown = new Set(Array.from(list.children).map((card) => card.dataset.eventId));
  const wanted = new Set(state.pending.map((request) => request.event_id));
  for (const card of Array.from(list.children)) if (!wanted.has(card.dataset.eventId)) card.remove();
  for (const request of state.pending) if (!shown.has(request.event_id)) list.appendChild(requestCard(request));
  state.root.hidden = !state.pending.length && !state.decided.length;
  tick();
}

function drawAudit() {
  const body = document.getElementById("ap-audit");
  body.replaceChildren();
  for (const row of state.decided.slice(0, 50)) {
    const tr = el("tr");
    tr.append(
      el("td", null, clock(row.decided_at)),
      el("td", "ap-verdict-" + row.verdict, row.verdict),
      el("td", null, row.decided_by),
      el("td", null, row.tool),
      el("td", null, row.machine),
      el("td", null, row.reason || ""),
      el("td", null, row.delivered === "hook" ? "taken" : "not taken"),
    );
    body.appendChild(tr);
  }
}

function tick() {
  const now = Date.now() + state.skew;
  for (const left of document.querySelectorAll(".ap-remaining")) left.textContent = remaining(Number(left.dataset.expiresAt) - now);
}

async function refresh() {
  const [pending, decided] = await Promise.all([
    call("GET", "/api/approvals?state=pending"), call("GET", "/api/approvals?state=decided"),
  ]);
  if (pending.status !== 200) { state.root.hidden = true; return; }
  state.skew = (pending.body.now || Date.now()) - Date.now();
  state.pending = pending.body.approvals || [];
  state.decided = decided.status === 200 ? decided.body.approvals || [] : [];
  drawPending();
  drawAudit();
  drawCount();
}

function onKey(event) {
  if (/^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName) || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key !== "a" && event.key !== "d") return;
  const card = document.querySelector("#ap-pending .ap-request");
  if (!card) return;
  event.preventDefault();
  const reason = card.querySelector(".ap-reason").value;
  decide(card.dataset.eventId, event.key === "a" ? "allow" : "deny", reason, card.querySelector(".ap-outcome"));
}

export function init() {
  const root = el("section", "ap-panel");
  root.id = "approvals";
  root.hidden = true;
  const head = el("div", "ap-panel-head");
  head.appendChild(el("h2", null, "Waiting for approval"));
  root.appendChild(head);
  root.appendChild(el("div", null)).id = "ap-pending";
  const audit = el("details", "ap-audit-box");
  audit.appendChild(el("summary", null, "Decisions (audit trail)"));
  const table = el("table", "compact");
  const headRow = el("tr");
  for (const name of ["decided", "verdict", "by", "tool", "machine", "reason", "hook"]) headRow.appendChild(el("th", null, name));
  table.appendChild(el("thead")).appendChild(headRow);
  table.appendChild(el("tbody")).id = "ap-audit";
  audit.appendChild(table);
  root.appendChild(audit);
  state.root = root;
  const header = document.querySelector("header");
  const count = el("span", "ap-count muted", "");
  count.id = "ap-count";
  header.appendChild(count);
  header.insertAdjacentElement("afterend", root);
  document.addEventListener("keydown", onKey);
  const loop = () => refresh().catch(() => {}).finally(() => setTimeout(loop, REFRESH_MS));
  loop();
  setInterval(tick, 1000);
}
