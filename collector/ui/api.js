// The collector's API: the token the page was opened with, and requests
// that carry it in the Authorization header.

const TOKEN_KEY = "hooktrail-token";

// The link the collector prints carries `#token=…` in the fragment (never
// sent to the server); the page keeps it in sessionStorage and takes it out
// of the address bar.
function readToken() {
  const match = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export const TOKEN = readToken();

export function authHeaders() {
  return TOKEN ? { Authorization: "Bearer " + TOKEN } : {};
}

// GETs `path` and returns its JSON; a failed answer throws with its error.
export async function api(path) {
  const response = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
