// The tab title, shared by the panels that count things for you: the
// sessions waiting for you (alerts.js, issue 20) and the permission requests
// to approve (approvals.js, issue 18). One owner, so neither overwrites the
// other: `(2) hooktrail · 1 to approve`.

const BASE = "hooktrail";
const counts = { waiting: 0, approvals: 0 };

export function setTitleCount(kind, count) {
  counts[kind] = count;
  document.title = (counts.waiting > 0 ? "(" + counts.waiting + ") " : "") + BASE +
    (counts.approvals > 0 ? " · " + counts.approvals + " to approve" : "");
}
