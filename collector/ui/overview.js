// The overview: events per minute over the last hour and cost per day over
// thirty days, as stacked bars in plain SVG, and Claude Code's activity
// (lines, commits, pull requests, active time) per day and project.

import { api } from "./api.js";
import { duration, el, PALETTE, project, svg, textNode } from "./format.js";

const $ = {
  section: document.getElementById("overview"),
  stackBy: document.getElementById("stack-by"),
  events: document.getElementById("chart-events"),
  costByModel: document.getElementById("chart-cost-model"),
  costByProject: document.getElementById("chart-cost-project"),
  activity: document.getElementById("ov-activity"),
};

// A stacked bar chart: `columns` is [{label, values: Map(key -> number)}],
// drawn with a y axis (0, half, max), x labels every `labelEvery` columns
// and a legend.
function stackedBars(box, columns, { labelEvery, yFormat, title }) {
  const keys = [...new Set(columns.flatMap((c) => [...c.values.keys()]))].sort();
  const colour = new Map(keys.map((key, index) => [key, PALETTE[index % PALETTE.length]]));
  const width = Math.max(400, box.clientWidth || 800), height = 180, left = 56, bottom = 22, top = 8;
  const plotW = width - left - 8, plotH = height - top - bottom;
  const totals = columns.map((c) => [...c.values.values()].reduce((a, b) => a + b, 0));
  const max = Math.max(...totals, 0) || 1;
  const root = svg("svg", { width, height, class: "bars", role: "img", "aria-label": title });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH - fraction * plotH;
    root.appendChild(svg("line", { x1: left, x2: width - 8, y1: y, y2: y, class: "grid" }));
    root.appendChild(svg("text", { x: left - 4, y: y + 4, class: "tick y" }, yFormat(max * fraction)));
  }
  const slot = plotW / Math.max(1, columns.length);
  columns.forEach((column, index) => {
    let y = top + plotH;
    for (const key of keys) {
      const value = column.values.get(key) || 0;
      if (!value) continue;
      const h = (value / max) * plotH;
      y -= h;
      const rect = svg("rect", { x: left + index * slot + 1, y, width: Math.max(1, slot - 2), height: Math.max(0.5, h), fill: colour.get(key) });
      rect.appendChild(svg("title", {}, key + ": " + yFormat(value) + " · " + column.label));
      root.appendChild(rect);
    }
    if (index % labelEvery === 0) root.appendChild(svg("text", { x: left + index * slot, y: height - 6, class: "tick" }, column.label));
  });
  root.appendChild(svg("line", { x1: left, x2: left, y1: top, y2: top + plotH, class: "axis" }));
  root.appendChild(svg("line", { x1: left, x2: width - 8, y1: top + plotH, y2: top + plotH, class: "axis" }));
  box.replaceChildren(root, legend(keys, colour));
}

function legend(keys, colour) {
  const box = el("div", "legend");
  for (const key of keys) {
    const item = el("span", "key");
    const swatch = svg("svg", { width: 10, height: 10 });
    swatch.appendChild(svg("rect", { width: 10, height: 10, fill: colour.get(key) }));
    item.append(swatch, textNode(" " + key));
    box.appendChild(item);
  }
  if (!keys.length) box.appendChild(el("span", "muted", "nothing yet"));
  return box;
}

function eventsPerMinute(data) {
  const by = $.stackBy.value;
  const start = Math.floor(data.since / 60000);
  const minutes = [];
  for (let index = 0; index <= 60; index++) {
    const date = new Date((start + index) * 60000);
    minutes.push({ label: String(date.getHours()).padStart(2, "0") + ":" + String(date.getMinutes()).padStart(2, "0"), values: new Map() });
  }
  for (const point of data.series) {
    const column = minutes[Math.floor(point.t / 60000) - start];
    const key = by === "machine" ? point.machine : point.hook;
    if (column) column.values.set(key, (column.values.get(key) || 0) + point.count);
  }
  stackedBars($.events, minutes, { labelEvery: 10, yFormat: (v) => String(Math.round(v)), title: "events per minute" });
}

function costPerDay(data, now) {
  const days = new Map();
  const firstDay = Math.floor((now - 29 * 86400000) / 86400000) * 86400000;
  for (let day = firstDay; day <= now; day += 86400000) days.set(day, { model: new Map(), project: new Map() });
  for (const row of data.cost_per_day) {
    const day = days.get(row.day);
    if (!day || row.cost_usd === null) continue;
    day.model.set(row.model, (day.model.get(row.model) || 0) + row.cost_usd);
    const name = project(row.project) || "(none)";
    day.project.set(name, (day.project.get(name) || 0) + row.cost_usd);
  }
  const dayLabel = (day) => new Date(day).toISOString().slice(5, 10);
  for (const [which, box] of [["model", $.costByModel], ["project", $.costByProject]]) {
    const columns = [...days.entries()].map(([day, sums]) => ({ label: dayLabel(day), values: sums[which] }));
    stackedBars(box, columns, { labelEvery: 5, yFormat: (v) => "$" + (v >= 10 ? v.toFixed(0) : v.toFixed(2)), title: "cost per day by " + which });
  }
}

// Claude Code's activity metrics per day and project, newest first.
function activityPerDay(data) {
  $.activity.replaceChildren();
  for (const row of (data.activity_per_day || []).slice().reverse()) {
    const tr = el("tr");
    for (const value of [row.day, project(row.project) || "(none)", row.lines_added, row.lines_removed, row.commits,
      row.pull_requests, duration(Math.round(row.active_seconds * 1000))]) tr.appendChild(el("td", null, value));
    $.activity.appendChild(tr);
  }
  if (!$.activity.children.length) $.activity.appendChild(el("tr")).appendChild(el("td", "muted", "no OpenTelemetry metrics (hooktrail-emit install --otel)"));
}

// Redraws the charts while the overview is shown.
export async function refreshOverview() {
  if ($.section.hidden) return;
  const now = Date.now();
  const data = await api("/api/stats?bucket=60&since=" + (now - 60 * 60000));
  eventsPerMinute(data);
  costPerDay(data, now);
  activityPerDay(data);
}
