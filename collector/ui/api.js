// The collector's API: signing in with the printed link's one-time code,
// and requests that carry the page token.
//
// The link carries `#code=…` (DESIGN §7), never the token: browsers keep
// every URL in their history, and a code works once, for five minutes. The
// page trades it at once for a page token (`POST /api/page-token`), keeps
// that in sessionStorage (one tab, gone with it) and renews it well before
// it expires, so one left in a closed browser's profile soon stops working.

const TOKEN_KEY = "hooktrail-page-token";

let token = sessionStorage.getItem(TOKEN_KEY);
let signInError = null;   // why the link's code was refused, for the page to show

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
  sessionStorage.setItem(TOKEN_KEY, token);
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

// First contact (issue 23): without a working token, say where the link is
// and take a pasted one (welcome.js), once.
let welcomed = false;
function welcome() {
  if (welcomed) return;
  welcomed = true;
  import("/welcome.js").then((module) => module.init({
    hadToken: Boolean(token), storeToken: (value) => sessionStorage.setItem(TOKEN_KEY, value) }));
}
