// The filter form above the event list: its inputs mirror the filters in
// the URL (route.js) and the feed (feed.js).

import { api } from "./api.js";
import { el } from "./format.js";
import { FILTERS } from "./route.js";

const $ = {
  form: document.getElementById("filters"),
  hook: document.getElementById("f-hook"),
  search: document.getElementById("f-q"),
  session: document.getElementById("f-session"),
  clear: document.getElementById("clear"),
  inputs: Object.fromEntries(FILTERS.map((name) => [name, document.getElementById("f-" + name)])),
};

// Fills the hook choice from the collector (`GET /api/hooks`), so the page
// keeps no list of its own and offers every hook the collector knows.
export async function loadHooks() {
  const { hooks } = await api("/api/hooks");
  for (const hook of hooks) $.hook.appendChild(el("option", null, hook)).value = hook;
}

// The filters the form holds.
export function formFilters() {
  const filters = {};
  for (const name of FILTERS) {
    const value = $.inputs[name].value.trim();
    if (value) filters[name] = value;
  }
  return filters;
}

export function showFilters(filters) {
  for (const name of FILTERS) $.inputs[name].value = filters[name] || "";
}

export function setSessionFilter(id) { $.session.value = id || ""; }

export function focusSearch() { $.search.focus(); $.search.select(); }

// `apply` runs on submit and on a hook choice; `clear` after the form is emptied.
export function whenFiltersChange({ apply, clear }) {
  $.form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
  $.hook.addEventListener("change", apply);
  $.clear.addEventListener("click", () => { showFilters({}); clear(); });
}
