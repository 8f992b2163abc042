// The collector's API: signing in with the printed link's one-time code,
// and requests that carry the page token.
//
// The link carries `#code=…` (DESIGN §7), never the token: browsers keep
// every URL in their history, and a code works once, for five minutes. The
// page trades it at once for a page token (`POST /api/page-token`) and
// renews it well before it expires.
//
// Nothing of it reaches the browser's files (issue 24). Chromium writes
// sessionStorage and localStorage to the profile, and session cookies too
// (into its Cookies database, encrypted on Linux without a keyring with a
// key every Chromium shares), so the page token lives in this module's
// memory only, and in `window.name`, which browsers keep in memory for the
// tab, carry over a reload, and clear on a cross-site navigation (setting
// it as the page goes away is too late for Chromium). The page token also
// works only with the binder the exchange sets as an HttpOnly session
// cookie (this script never sees it; fetches send it by themselves): the
// cookie may reach the disk, the page token never does, and a page token
// read from a tab works nowhere else.

const TOKEN_KEY = "hooktrail-page-token";
const HANDOVER = "hooktrail-page-token:";

let token = handedOver();
let signInError = null;   // why the link's code was refused, for the page to show

// The page token this tab held before a reload, if any. (Older versions
// kept it in sessionStorage: that copy is removed.)
function handedOver() {
  try { sessionStorage.removeItem(TOKEN_KEY); } catch (error) { /* storage off */ }
  const name = window.name;
  return name.startsWith(HANDOVER) ? name.slice(HANDOVER.length) || null : null;
}

// decodeURIComponent that never throws: a malformed % sequence in a
// hand-edited or truncated link stays as it is instead of breaking the page.
export function safeDecode(text) {
  try { return decodeURIComponent(text); } catch (error) { return text; }
}

export function authHeaders() {
  return token ? { Authorization: "Bearer " + token } : {};
}

export function hasToken() { return !!token; }

export function signInProblem() { return signInError; }

function keep(answer) {
  token = answer.token;
  window.name = HANDOVER + token;
  // Renew at a third of the lifetime: a background tab's timers run late.
  const renewIn = Math.max(1000, Math.floor(answer.lifetime_ms / 3));
  setTimeout(() => renew().catch(() => setTimeout(() => renew().catch(() => {}), 5000)), renewIn);
}

async function renew() {
  keep(await post("/api/page-token/renew"));
}

// POSTs `body` (JSON) to `path` and returns the answer's JSON; a failed
// answer throws with its error. The collector checks the Origin of every POST.
export async function post(path, body) {
  const response = await fetch(path, { method: "POST", cache: "no-store",
    headers: { ...authHeaders(), "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

// GETs `path` and returns its JSON; a failed answer throws with its error.
export async function api(path) {
  const response = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) welcome();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// Takes the code out of the address bar and trades it for a page token; a
// page already holding one renews it (it may be close to its expiry after
// a reload). Resolves either way: a refusal is kept for the page to show.
export async function signIn() {
  const match = /(?:^|[#&])code=([^&]*)/.exec(location.hash);
  if (match) {
    history.replaceState(null, "", location.pathname + location.search);
    try { keep(await post("/api/page-token", { code: safeDecode(match[1]) })); return; }
    catch (error) { signInError = error.message; }
  }
  if (token) await renew().catch(() => {});
}

// Trades a pasted token for a page token at once: the long-lived token is
// never kept in the browser (sessionStorage goes to disk). Resolves to
// whether the collector took it.
async function tradeToken(value) {
  const response = await fetch("/api/page-token/renew", { method: "POST", cache: "no-store",
    headers: { Authorization: "Bearer " + value, "Content-Type": "application/json" }, body: "{}" });
  if (!response.ok) return false;
  keep(await response.json());
  return true;
}

// First contact (issue 23): without a working token, say where the link is
// and take a pasted one (welcome.js), once.
let welcomed = false;
function welcome() {
  if (welcomed) return;
  welcomed = true;
  import("/welcome.js").then((module) => module.init({ hadToken: Boolean(token), tradeToken }));
}
