// Budgets (issue 19): each budget that applies, as a bar of spend against
// its limit that turns orange at the warning threshold and red at the
// limit; in the session view that session's, in the overview every
// project, machine and day budget. An over budget offers a grant (one more
// amount), recorded with the decisions' audit trail.

import { authHeaders } from "./api.js";
import { el, money, short } from "./format.js";
import { readRoute } from "./route.js";

const $ = {
  session: document.getElementById("sv-budgets"),
  overview: document.getElementById("ov-budgets"),
};

const SCOPES = { session: "session", project: "project", machine: "machine", all: "everywhere" };

function standingClass(entry) {
  return entry.standing === "over" ? "over" : entry.standing === "warning" ? "warn" : "ok";
}

function label(entry) {
  const period = entry.period === "lifetime" ? "" : " per " + entry.period;
  const subject = entry.scope === "session" ? "" : entry.subject ? " " + short(entry.subject) : "";
  return entry.budget + " · " + SCOPES[entry.scope] + subject + period + " · " + entry.action;
}

async function grant(entry, input, status) {
  const usd = Number(input.value);
  if (!(usd > 0)) { status.textContent = "enter an amount in USD"; return; }
  const response = await fetch("/api/budgets/grant", {
    method: "POST",
    headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
    body: JSON.stringify({ budget: entry.budget, subject: entry.subject, usd, reason: "granted on the page" }),
  });
  const body = await response.json().catch(() => ({}));
  status.textContent = response.ok ? "granted " + money(usd) : (body.error || response.statusText);
}

// One budget: its label, the bar, the figures, and a grant form when over.
function row(entry) {
  const item = el("li", "budget " + standingClass(entry));
  item.append(el("span", "budget-label", label(entry)));
  const bar = el("span", "budget-bar");
  const fill = el("span", "budget-fill");
  const share = entry.limit_usd > 0 ? Math.min(1, entry.spent_usd / entry.limit_usd) : 1;
  fill.style.width = (share * 100).toFixed(1) + "%";
  bar.append(fill);
  item.append(bar, el("span", "budget-figures", money(entry.spent_usd) + " of " + money(entry.limit_usd)));
  if (entry.standing === "over") {
    const input = el("input");
    input.type = "number";
    input.min = "0.01";
    input.step = "0.01";
    input.placeholder = "USD";
    input.className = "budget-amount";
    const button = el("button", "budget-grant", "Grant more");
    const status = el("span", "muted");
    button.addEventListener("click", () => grant(entry, input, status).catch((error) => { status.textContent = String(error); }));
    item.append(input, button, status);
  }
  return item;
}

function draw(target, entries) {
  if (!target) return;
  target.hidden = entries.length === 0;
  target.replaceChildren(...entries.map(row));
}

async function refresh(api) {
  const route = readRoute();
  if (route.view === "session" && route.session) {
    const answer = await api("/api/budgets?session=" + encodeURIComponent(route.session));
    draw($.session, answer.budgets || []);
  } else if (route.view === "overview") {
    const answer = await api("/api/budgets");
    draw($.overview, (answer.budgets || []).filter((entry) => entry.scope !== "session"));
  }
}

export function init(page) {
  page.every(2000, () => refresh(page.api));
}
