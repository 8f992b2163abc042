// A session's timeline in plain SVG: one lane per agent, tool calls as
// spans, model requests (OpenTelemetry) as thin bars, permission waits and
// compactions shaded, prompts, stops and API errors as markers. Every shape
// of a hook event carries its seq, so a click opens it.

import { api } from "./api.js";
import { duration, short, svg } from "./format.js";

const LANE = 24, AXIS = 22, LABEL = 110;

const $ = { box: document.getElementById("timeline") };

// A round tick step (1, 2 or 5 times a power of ten, or whole minutes and hours).
function niceStep(raw) {
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000,
    600000, 900000, 1800000, 3600000, 7200000, 21600000, 43200000, 86400000];
  return steps.find((step) => step >= raw) || Math.ceil(raw / 86400000) * 86400000;
}

function drawAxis(root, x, t0, t1, height) {
  // About six ticks, each labelled with its offset from the start.
  const step = niceStep((t1 - t0) / 6);
  for (let t = 0; t <= t1 - t0; t += step) {
    root.appendChild(svg("line", { x1: x(t0 + t), x2: x(t0 + t), y1: AXIS - 4, y2: height, class: "grid" }));
    root.appendChild(svg("text", { x: x(t0 + t) + 2, y: AXIS - 8, class: "tick" }, duration(t)));
  }
}

function drawLanes(root, x, t1, lanes) {
  lanes.forEach((lane, index) => {
    const y = AXIS + index * LANE;
    root.appendChild(svg("text", { x: 4, y: y + 15, class: "lane-label" }, index ? lane.label + " " + short(lane.agent_id) : "main"));
    if (index && lane.started_ts) {
      const life = svg("rect", { x: x(lane.started_ts), y: y + 2, width: Math.max(1, x(lane.stopped_ts || t1) - x(lane.started_ts)), height: LANE - 4, class: "life" });
      life.appendChild(svg("title", {}, lane.label + " " + lane.agent_id + " · " + duration((lane.stopped_ts || t1) - lane.started_ts)));
      root.appendChild(life);
    }
  });
}

// Spans to draw: each span, or, when there are more spans than the plot
// has pixels (a session of thousands of calls), the spans of one lane, kind
// and outcome that touch within a pixel as one shape titled with their
// count, whose click opens the first. Thousands of sub-pixel rectangles
// cost a second of drawing and show nothing more (issue 21 item 4).
function packSpans(spans, x, t1, plot) {
  const shapes = [], open = new Map();
  for (const span of spans) {
    const [lane, kind, , start, end, outcome] = span;
    const x0 = x(start), x1 = Math.max(x0 + 2, x(end ?? t1));
    const key = lane + " " + kind + " " + outcome;
    const shape = open.get(key);
    if (spans.length > plot && shape && x0 >= shape.x0 - 1 && x0 <= shape.x1 + 1) {
      shape.x1 = Math.max(shape.x1, x1);
      shape.count++;
      continue;
    }
    const fresh = { span, x0, x1, count: 1 };
    open.set(key, fresh);
    shapes.push(fresh);
  }
  return shapes;
}

function spanTitle([, kind, label, start, end, outcome, seq], count) {
  const from = seq ? " from #" + seq : "";
  if (count > 1) return count + " " + (kind === "tool" ? "tool calls" : kind === "model" ? "model requests" : kind) + " (" + outcome + ")" + from;
  const what = kind === "tool" ? label + " · " + outcome : kind === "permission" ? "waiting for permission: " + (label || "")
    : kind === "model" ? "model " + (label || "") : "compacting";
  return what + " · " + (end === null ? "still open" : duration(end - start)) + (seq ? " · #" + seq : "");
}

function drawSpans(root, x, t1, spans, plot) {
  for (const { span, x0, x1, count } of packSpans(spans, x, t1, plot)) {
    const [lane, kind, , , , outcome, seq] = span;
    const y = AXIS + lane * LANE;
    // A model request (OpenTelemetry) is a thin bar along the lane's top;
    // tool calls sit in the middle; waits and compactions shade the lane.
    const model = kind === "model", shaded = kind !== "tool" && !model;
    const rect = svg("rect", { x: x0, y: model ? y + 1 : shaded ? y + 1 : y + 6, width: x1 - x0,
      height: model ? 4 : shaded ? LANE - 2 : LANE - 12, class: "span " + kind + " " + outcome });
    if (seq) rect.dataset.seq = seq;
    rect.appendChild(svg("title", {}, spanTitle(span, count)));
    root.appendChild(rect);
  }
}

// Markers, one per pixel column, lane and kind when there are more markers
// than pixels (as spans are packed).
function drawMarkers(root, x, markers, plot) {
  const drawn = new Set();
  for (const [lane, hook, ts, seq, text] of markers) {
    const y = AXIS + lane * LANE;
    const cx = x(ts);
    const kind = hook === "UserPromptSubmit" ? "prompt" : hook === "StopFailure" ? "stop-failed" : hook === "ApiError" ? "api-error" : "stop";
    const column = lane + " " + kind + " " + Math.round(cx);
    if (markers.length > plot && drawn.has(column)) continue;
    drawn.add(column);
    const mark = hook === "UserPromptSubmit"
      ? svg("path", { d: "M" + (cx - 5) + " " + y + " L" + (cx + 5) + " " + y + " L" + cx + " " + (y + 8) + " Z", class: "marker " + kind })
      : svg("line", { x1: cx, x2: cx, y1: y + 2, y2: y + LANE - 2, class: "marker " + kind });
    if (seq) mark.dataset.seq = seq;
    mark.appendChild(svg("title", {}, hook + (text ? ": " + text : "") + (seq ? " · #" + seq : "")));
    root.appendChild(mark);
  }
}

// Session `id`'s timeline data (a promise), so a caller can ask for it
// before it needs it.
export function fetchTimeline(id) {
  return api("/api/sessions/" + encodeURIComponent(id) + "/timeline");
}

// Draws session `id`'s timeline, from `pending` (fetchTimeline's promise)
// or a fetch of its own, unless `current()` says the page moved on.
export async function drawTimeline(id, current, pending) {
  const data = await (pending || fetchTimeline(id));
  if (!current()) return;
  const width = Math.max(400, $.box.clientWidth || 800);
  const plot = width - LABEL - 10;
  const t0 = data.start, t1 = Math.max(data.end, t0 + 1);
  const x = (ts) => LABEL + ((Math.min(Math.max(ts, t0), t1) - t0) / (t1 - t0)) * plot;
  const height = AXIS + data.lanes.length * LANE + 4;
  const root = svg("svg", { width, height, class: "timeline", role: "img", "aria-label": "session timeline" });
  drawAxis(root, x, t0, t1, height);
  drawLanes(root, x, t1, data.lanes);
  drawSpans(root, x, t1, data.spans, plot);
  drawMarkers(root, x, data.markers, plot);
  $.box.replaceChildren(root);
}
