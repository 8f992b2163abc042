// First contact (issue 23): a page opened without a working token shows
// where its link is printed, the command that prints it, and a field to paste
// the link or the token, instead of an empty page with a red error.
//
// An ES module loaded by the page on its first 401. Text goes in with
// textContent only; styles are set through the CSSOM, which the page's
// Content-Security-Policy allows (it forbids inline style attributes).

let shown = false;

function el(tag, text, style) {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (style) Object.assign(node.style, style);
  return node;
}

const CODE = { fontFamily: "ui-monospace, monospace", padding: "0.1em 0.3em", border: "1px solid #8886", borderRadius: "3px" };

// What the pasted text gives: a link's fragment (kept for the page's own
// reading of it), or a bare token.
export function parsePasted(text) {
  const value = text.trim();
  const hash = value.indexOf("#");
  if (hash >= 0) return { fragment: value.slice(hash + 1) };
  if (/^[A-Za-z0-9._~-]+$/.test(value)) return { token: value };
  return null;
}

// Shows the panel once. `hadToken`: the page sent a token that was refused
// (an old link, or the collector got a new token). `tradeToken(token)`
// trades a pasted token for a page token and resolves to whether it worked.
export function init({ hadToken, tradeToken }) {
  if (shown) return;
  shown = true;
  const panel = el("section", null, {
    position: "fixed", inset: "0", zIndex: "1000", display: "flex", alignItems: "center", justifyContent: "center",
    background: "Canvas", color: "CanvasText",
  });
  panel.id = "welcome";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-labelledby", "welcome-title");
  const box = el("div", null, { maxWidth: "38em", padding: "1.5em 2em", border: "1px solid #8886", borderRadius: "8px", lineHeight: "1.5" });
  const title = el("h2", hadToken ? "This link's token was refused" : "Open hooktrail with its link");
  title.id = "welcome-title";
  box.appendChild(title);
  box.appendChild(el("p", "The collector's page needs the token in its link: anyone on this machine can reach this port, the token keeps them out."));
  const where = el("ul");
  const item = (before, code, after) => {
    const li = el("li", before);
    li.appendChild(el("code", code, CODE));
    if (after) li.appendChild(document.createTextNode(after));
    where.appendChild(li);
  };
  item("The collector prints the link when it starts: in its terminal, or in its journal: ", "journalctl --user -u hooktrail-collector | grep 'open the page'");
  item("Or print it again: ", "hooktrail-collector url", " (with the collector's flags or environment).");
  box.appendChild(where);
  const form = el("form");
  form.id = "welcome-form";
  form.autocomplete = "off";
  const label = el("label", "Paste the link or the token ");
  const input = el("input", null, { width: "100%", fontFamily: "ui-monospace, monospace", marginTop: "0.3em" });
  input.id = "welcome-token";
  input.type = "password";
  input.spellcheck = false;
  label.appendChild(input);
  form.appendChild(label);
  const button = el("button", "Open", { marginTop: "0.6em" });
  button.type = "submit";
  form.appendChild(button);
  const problem = el("p", null, { color: "#c33" });
  form.appendChild(problem);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const pasted = parsePasted(input.value);
    if (!pasted) {
      problem.textContent = "That is neither a link nor a token.";
      return;
    }
    if (pasted.token) {
      tradeToken(pasted.token).then((ok) => {
        if (ok) { location.reload(); return; }
        title.textContent = "This token was refused";
        problem.textContent = "The collector did not take that token: paste its link, or the token it prints.";
      }, () => { problem.textContent = "The collector did not answer."; });
      return;
    }
    // A link: the page reads its fragment as it reads a clicked link's, and
    // replaces it at once, so it stays out of the history.
    location.replace(location.pathname + location.search + "#" + pasted.fragment);
    location.reload();
  });
  box.appendChild(form);
  panel.appendChild(box);
  document.body.appendChild(panel);
  input.focus();
}
