#!/usr/bin/env python3
"""Scripted stand-in for the Anthropic Messages API (stdlib only).

Part of hooktrail's end-to-end check (scripts/e2e-cli): the real Claude Code
CLI is pointed at it with ANTHROPIC_BASE_URL=http://127.0.0.1:PORT and a
dummy ANTHROPIC_API_KEY, and it plays back a scripted conversation (text and
tool_use blocks, API errors) with chosen `usage` numbers, so no network and no
real key are needed.

Run (scripts/e2e/run.py does this for every scenario):
    python3 fake_anthropic.py --script scenario.json --port 8765 --log-dir DIR

Script file format (JSON):
{
  "default_usage": {...optional usage used when a turn has none...},
  "turns": [
    {
      "name": "t1",                    # label, only for logs
      "when": "substring",             # optional: request's LAST message (JSON text)
                                       #   must contain this; turns without "when"
                                       #   match any main-loop request
      "model": "claude-sonnet-4-5",    # optional: request model must contain it
      "times": 1,                      # how many requests it answers (default 1)
      "error": {"status": 529, "type": "overloaded_error", "message": "Overloaded"},
      "content": [                     # response blocks (ignored if "error")
        {"type": "text", "text": "hello"},
        {"type": "tool_use", "id": "toolu_01", "name": "Bash",
         "input": {"command": "ls", "description": "list"}}
      ],
      "stop_reason": "tool_use",       # default: tool_use if any tool_use block else end_turn
      "chunk_chars": 20,               # split text into deltas of this size (default 40)
      "chunk_delay": 0.02,             # seconds between text deltas
      "usage": {"input_tokens": 10, "output_tokens": 20,
                "cache_creation_input_tokens": 300,
                "cache_creation": {"ephemeral_5m_input_tokens": 100,
                                   "ephemeral_1h_input_tokens": 200},
                "cache_read_input_tokens": 1000}
    }
  ]
}

Turns are matched in order: the first unused turn whose conditions hold wins.
Only "main-loop" requests (requests that carry `tools`) consume turns.
Requests without tools (title generation, quota probes, compaction summaries,
...) get an automatic answer (see side_reply); a turn with "side": true can
answer them instead. Unmatched main-loop requests get a plain "OK." end_turn.

It is also a tiny OTLP/HTTP-JSON receiver: POSTs to /v1/logs, /v1/metrics and
/v1/traces are appended to <log-dir>/otlp.jsonl (the CLI drops the "console"
OTel exporter in -p mode, so point OTEL_EXPORTER_OTLP_ENDPOINT here instead).

Every request is logged to <log-dir>/requests.jsonl (path, headers subset,
body) and the reply chosen to <log-dir>/replies.jsonl.
"""
import argparse
import itertools
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"turns": [], "used": [], "log_dir": ".", "default_usage": None, "seq": itertools.count(1)}

DEFAULT_USAGE = {
    "input_tokens": 12,
    "output_tokens": 7,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}


def log(name, obj):
    with LOCK:
        with open(os.path.join(STATE["log_dir"], name), "a") as f:
            f.write(json.dumps(obj) + "\n")


def last_message_text(body):
    """JSON text of the messages after the last assistant message (the new input)."""
    msgs = body.get("messages") or []
    tail = []
    for m in reversed(msgs):
        if m.get("role") == "assistant":
            break
        tail.append(m)
    return json.dumps(list(reversed(tail)))


def system_text(body):
    s = body.get("system")
    if isinstance(s, list):
        return " ".join(b.get("text", "") for b in s if isinstance(b, dict))
    return s or ""


def pick_turn(body, is_main):
    last = last_message_text(body)
    model = body.get("model", "")
    with LOCK:
        for i, t in enumerate(STATE["turns"]):
            if STATE["used"][i] >= t.get("times", 1):
                continue
            if bool(t.get("side", False)) == is_main:
                continue
            w = t.get("when")
            if w is not None and w not in last:
                continue
            if t.get("model") and t["model"] not in model:
                continue
            STATE["used"][i] += 1
            return t
    return None


def side_reply(body):
    """Answer for requests without tools (title, quota, summaries ...)."""
    sys_t = system_text(body).lower()
    last = last_message_text(body).lower()
    if "title" in sys_t or "title" in last[:400]:
        # session title generation asks for JSON {"title": ...}
        return [{"type": "text", "text": json.dumps({"title": "Scripted test session"})}]
    if "summar" in sys_t or "summar" in last:
        return [{"type": "text", "text": "<summary>Scripted summary of the conversation so far.</summary>"}]
    return [{"type": "text", "text": "OK."}]


def main_fallback(body):
    """Unscripted main-loop request: compaction summaries get a summary, else OK."""
    last = last_message_text(body)
    if "Respond with TEXT ONLY" in last or "summary of the conversation" in last:
        return [{"type": "text", "text": "<analysis>Scripted analysis.</analysis>\n<summary>1. Primary Request and Intent: scripted test session.\n2. Key Technical Concepts: none.</summary>"}]
    return [{"type": "text", "text": "OK."}]


def usage_for(turn):
    u = dict((turn or {}).get("usage") or STATE["default_usage"] or DEFAULT_USAGE)
    u.setdefault("input_tokens", 0)
    u.setdefault("output_tokens", 0)
    u.setdefault("cache_creation_input_tokens", 0)
    u.setdefault("cache_read_input_tokens", 0)
    if "cache_creation" not in u:
        u["cache_creation"] = {
            "ephemeral_5m_input_tokens": u["cache_creation_input_tokens"],
            "ephemeral_1h_input_tokens": 0,
        }
    u.setdefault("service_tier", "standard")
    return u


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_body(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except Exception:
            return {"_raw": raw.decode("utf8", "replace")}

    def _send_json(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        log("requests.jsonl", {"t": time.time(), "method": "GET", "path": self.path})
        if self.path.startswith("/v1/models"):
            return self._send_json(200, {"data": [], "has_more": False, "first_id": None, "last_id": None})
        self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not found"}})

    def do_HEAD(self):
        log("requests.jsonl", {"t": time.time(), "method": "HEAD", "path": self.path})
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        body = self._read_body()
        seq = next(STATE["seq"])
        path = self.path.split("?")[0]
        if path in ("/v1/logs", "/v1/metrics", "/v1/traces"):
            # OTLP/HTTP JSON receiver (OTEL_EXPORTER_OTLP_PROTOCOL=http/json)
            log("otlp.jsonl", {"t": time.time(), "path": path, "body": body})
            return self._send_json(200, {})
        hdr = {k: v for k, v in self.headers.items() if k.lower() in ("anthropic-beta", "x-app", "user-agent", "x-claude-code-session-id", "anthropic-version")}
        log("requests.jsonl", {"seq": seq, "t": time.time(), "method": "POST", "path": self.path, "headers": hdr, "body": body})
        if path.endswith("/count_tokens"):
            n = len(json.dumps(body)) // 4
            return self._send_json(200, {"input_tokens": n})
        if not path.endswith("/v1/messages"):
            return self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "no " + path}})

        is_main = bool(body.get("tools"))
        turn = pick_turn(body, is_main)
        model = body.get("model", "claude-sonnet-4-5")
        if turn is None:
            content = side_reply(body) if not is_main else main_fallback(body)
            turn = {"name": "auto-side" if not is_main else "auto-main", "content": content,
                    "usage": {"input_tokens": 50, "output_tokens": 5}}
        log("replies.jsonl", {"seq": seq, "turn": turn.get("name"), "main": is_main, "model": model,
                              "stream": bool(body.get("stream")), "max_tokens": body.get("max_tokens"),
                              "last": last_message_text(body)[:300]})

        err = turn.get("error")
        if err:
            return self._send_json(err.get("status", 500), {
                "type": "error",
                "error": {"type": err.get("type", "api_error"), "message": err.get("message", "scripted error")}},
                {"x-should-retry": "false"} if err.get("no_retry", True) else None)

        content = turn.get("content") or [{"type": "text", "text": "OK."}]
        stop = turn.get("stop_reason") or ("tool_use" if any(b.get("type") == "tool_use" for b in content) else "end_turn")
        usage = usage_for(turn)
        msg_id = "msg_" + uuid.uuid4().hex[:24]
        if not body.get("stream"):
            return self._send_json(200, {"id": msg_id, "type": "message", "role": "assistant", "model": model,
                                         "content": content, "stop_reason": stop, "stop_sequence": None,
                                         "usage": usage})
        self.stream(msg_id, model, content, stop, usage, turn)

    def stream(self, msg_id, model, content, stop, usage, turn):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def ev(name, data):
            self.wfile.write(("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode())
            self.wfile.flush()

        start_usage = dict(usage)
        start_usage["output_tokens"] = 1
        ev("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
        csize = int(turn.get("chunk_chars", 40))
        delay = float(turn.get("chunk_delay", 0.0))
        for idx, b in enumerate(content):
            if b["type"] == "text":
                ev("content_block_start", {"type": "content_block_start", "index": idx, "content_block": {"type": "text", "text": ""}})
                txt = b["text"]
                for i in range(0, max(len(txt), 1), csize):
                    ev("content_block_delta", {"type": "content_block_delta", "index": idx,
                                               "delta": {"type": "text_delta", "text": txt[i:i + csize]}})
                    if delay:
                        time.sleep(delay)
            elif b["type"] == "tool_use":
                ev("content_block_start", {"type": "content_block_start", "index": idx, "content_block": {
                    "type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}})
                js = json.dumps(b.get("input", {}))
                for i in range(0, len(js), 30):
                    ev("content_block_delta", {"type": "content_block_delta", "index": idx,
                                               "delta": {"type": "input_json_delta", "partial_json": js[i:i + 30]}})
            elif b["type"] == "thinking":
                ev("content_block_start", {"type": "content_block_start", "index": idx, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                ev("content_block_delta", {"type": "content_block_delta", "index": idx, "delta": {"type": "thinking_delta", "thinking": b["thinking"]}})
                ev("content_block_delta", {"type": "content_block_delta", "index": idx, "delta": {"type": "signature_delta", "signature": "sig"}})
            ev("content_block_stop", {"type": "content_block_stop", "index": idx})
        ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage})
        ev("message_stop", {"type": "message_stop"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", required=True)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--log-dir", default=".")
    a = ap.parse_args()
    sc = json.load(open(a.script))
    STATE["turns"] = sc.get("turns", [])
    STATE["used"] = [0] * len(STATE["turns"])
    STATE["default_usage"] = sc.get("default_usage")
    STATE["log_dir"] = a.log_dir
    os.makedirs(a.log_dir, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print("listening on", a.port, file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
