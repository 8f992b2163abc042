#!/usr/bin/env python3
"""Claude Code's own OpenTelemetry, received and joined, with the real CLI (issue 22).

For each OTLP protocol (http/protobuf, then http/json): a throwaway HOME with
a collector receiving OTLP (`--otlp`), the hooks and the telemetry settings
written by `hooktrail-emit install --otel`, and the real Claude Code CLI in
`-p` mode against the scripted stand-in API (scripts/e2e/fake_anthropic.py):
an overloaded answer it retries, three Bash calls, a last answer that
fails (not retried). The
logs exporter is `otlp,console`, so the CLI also prints every log record on
stdout; the console's `api_request` records are the reference:

- every console `api_request` is stored (`otel_events`, by `request_id`);
- per session, the stored OTel cost (`usage.otel_cost_usd`) equals the
  console's `cost_usd`, per request and summed, exactly (the same doubles);
- each request is joined to its transcript's usage row by `request_id`
  (no `otel` row left, one usage row per request: nothing counted twice);
- the API error is stored, and the timeline has a model span per request
  between the tool spans.

    python3 scripts/e2e/otel.py --claude PATH --bin-dir DIR [--protocol http/protobuf|http/json|both] [--keep]

Prints one line per check and the figures; exit 0 only if every check passes.
"""
import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request

# The helpers budgets.py (beside this file) already has.
from budgets import Checks, free_port, port_open, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
USAGE = {"input_tokens": 2345, "output_tokens": 156, "cache_read_input_tokens": 4000,
         "cache_creation_input_tokens": 600,
         "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 200}}


def turns():
    """An overloaded answer (retried), three Bash calls, an answer that fails."""
    script = [{"name": "overloaded", "error": {"status": 529, "type": "overloaded_error",
                                               "message": "Overloaded", "no_retry": False}}]
    for name in ("one", "two", "three"):
        script.append({"name": name, "usage": USAGE, "content": [
            {"type": "tool_use", "id": "toolu_" + name, "name": "Bash",
             "input": {"command": "sleep 0.3; echo %s > %s.txt" % (name, name),
                       "description": "write " + name}}]})
    # The last answer fails for good: Claude Code reports an api_error.
    script.append({"name": "failed", "error": {"status": 529, "type": "overloaded_error",
                                                "message": "Overloaded"}})
    return script


def console_requests(stdout):
    """The console exporter's api_request records: [(session, request_id, cost_usd)]."""
    found = []
    for block in re.split(r"\n(?=\{\n  resource:)", stdout):
        if 'body: "claude_code.api_request"' not in block:
            continue
        session = re.search(r'"session\.id": "([^"]+)"', block)
        request = re.search(r'\brequest_id: "([^"]+)"', block)
        cost = re.search(r"\bcost_usd: ([0-9.e+-]+)", block)
        found.append((session and session.group(1), request and request.group(1),
                      float(cost.group(1)) if cost else None))
    return found


class World:
    """A throwaway HOME, a collector receiving OTLP, the fake API, the hooks."""

    def __init__(self, options, protocol):
        self.options = options
        self.protocol = protocol
        self.dir = tempfile.mkdtemp(prefix="hooktrail-otel-")
        self.home = os.path.join(self.dir, "home")
        self.project = os.path.join(self.dir, "project")
        self.processes = []
        for d in (self.home, self.project, os.path.join(self.home, ".claude")):
            os.makedirs(d, exist_ok=True)
        self.runtime = os.path.join(self.dir, "run")
        os.makedirs(self.runtime, mode=0o700)
        self.db = os.path.join(self.dir, "events.db")
        self.http_port, self.otlp_port, self.fake_port = free_port(), free_port(), free_port()
        self.script = os.path.join(self.dir, "script.json")
        with open(self.script, "w") as f:
            json.dump({"turns": turns()}, f)
        subprocess.run("git init -q", shell=True, cwd=self.project, check=True)
        with open(os.path.join(self.home, ".claude.json"), "w") as f:
            json.dump({"hasCompletedOnboarding": True, "numStartups": 5,
                       "projects": {self.project: {"hasTrustDialogAccepted": True}}}, f)
        self.settings = os.path.join(self.home, ".claude", "settings.json")
        # A setting of the user's own, which install keeps: the console
        # exporter beside OTLP, so the CLI prints its records too.
        with open(self.settings, "w") as f:
            json.dump({"env": {"OTEL_LOGS_EXPORTER": "otlp,console"}}, f)

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANTHROPIC", "CLAUDE", "OTEL", "HOOKTRAIL", "XDG_"))}
        env.update({"HOME": self.home, "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
                    "XDG_STATE_HOME": os.path.join(self.home, ".local", "state"),
                    "XDG_DATA_HOME": os.path.join(self.home, ".local", "share"),
                    "XDG_RUNTIME_DIR": self.runtime,
                    "HOOKTRAIL_SOCKET": os.path.join(self.runtime, "collector.sock"),
                    "HOOKTRAIL_SPOOL_DIR": os.path.join(self.dir, "spool")})
        return env

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.processes.append(process)
        return process

    def up(self):
        argv = [os.path.join(self.options.bin_dir, "hooktrail-collector"), "--db", self.db,
                "--http", "127.0.0.1:%d" % self.http_port, "--no-token",
                "--otlp", "127.0.0.1:%d" % self.otlp_port]
        self.start("collector", argv, env=self.env())
        if not wait_for(lambda: self.port_open(self.http_port) and self.port_open(self.otlp_port), 20):
            raise RuntimeError("the collector did not come up (%s/collector.log)" % self.dir)
        done = subprocess.run([os.path.join(self.options.bin_dir, "hooktrail-emit"), "install",
                               "--settings", self.settings, "--otel",
                               "--otel-endpoint", "http://127.0.0.1:%d" % self.otlp_port,
                               "--otel-protocol", self.protocol],
                              env=self.env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("install --otel failed: " + done.stderr)
        self.start("fake", [sys.executable, os.path.join(HERE, "fake_anthropic.py"), "--script",
                            self.script, "--port", str(self.fake_port), "--log-dir", self.dir])
        if not wait_for(lambda: self.port_open(self.fake_port), 10):
            raise RuntimeError("fake_anthropic.py did not start")

    port_open = staticmethod(port_open)

    def api(self, path):
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (self.http_port, path),
                                         headers={"Host": "127.0.0.1:%d" % self.http_port})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def claude(self, prompt):
        """Runs the CLI; the telemetry settings come from settings.json."""
        env = self.env()
        env.update({"ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % self.fake_port,
                    "ANTHROPIC_API_KEY": "sk-ant-test-key", "DISABLE_AUTOUPDATER": "1",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "IS_SANDBOX": "1"})
        argv = [self.options.claude, "-p", "--dangerously-skip-permissions",
                "--model", "claude-sonnet-4-5", prompt]
        done = subprocess.run(argv, cwd=self.project, env=env, capture_output=True, text=True,
                              timeout=self.options.timeout)
        with open(os.path.join(self.dir, "claude.out"), "w") as f:
            f.write(done.stdout)
        return done.stdout

    def rows(self, sql, args=()):
        with sqlite3.connect("file:%s?mode=ro" % self.db, uri=True) as db:
            return db.execute(sql, args).fetchall()

    def down(self):
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        if not self.options.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("  kept %s" % self.dir)


def run(options, protocol, checks):
    print("OTEL_EXPORTER_OTLP_PROTOCOL=%s" % protocol)
    world = World(options, protocol)
    try:
        world.up()
        with open(world.settings) as f:
            env = json.load(f).get("env", {})
        checks.check("install --otel wrote the telemetry settings and kept the user's",
                     env.get("CLAUDE_CODE_ENABLE_TELEMETRY") == "1"
                     and env.get("OTEL_EXPORTER_OTLP_PROTOCOL") == protocol
                     and env.get("OTEL_LOGS_EXPORTER") == "otlp,console", repr(env))
        stdout = world.claude("write three files")
        console = console_requests(stdout)
        sessions = sorted({session for session, _, _ in console})
        checks.check("the console printed api_request records of one session",
                     len(console) >= 3 and len(sessions) == 1 and all(c[1] and c[2] is not None
                                                                      for c in console),
                     "%d records, sessions %r" % (len(console), sessions))
        if not sessions:
            return
        session = sessions[0]
        wanted = {request_id for _, request_id, _ in console}
        stored = wait_for(lambda: (lambda got: got if wanted <= got else None)(
            {row[0] for row in world.rows(
                "SELECT request_id FROM otel_events WHERE name = 'api_request' AND session_id = ?",
                (session,))}), 20) or set()
        checks.check("every api_request is stored", wanted <= stored,
                     "%d of %d" % (len(wanted & stored), len(wanted)))
        joined = wait_for(lambda: (lambda rows: rows if len(rows) == len(wanted) and all(
            row[1] != "otel" for row in rows) else None)(world.rows(
                "SELECT request_id, origin, otel_cost_usd FROM usage WHERE session_id = ?",
                (session,))), 20) or world.rows(
                "SELECT request_id, origin, otel_cost_usd FROM usage WHERE session_id = ?",
                (session,))
        by_request = {row[0]: row for row in joined}
        checks.check("each request is joined to its transcript row by request_id",
                     set(by_request) == wanted and all(row[1] in ("hook", "import")
                                                       for row in joined),
                     "%d usage rows, origins %r" % (len(joined), sorted({r[1] for r in joined})))
        mismatched = [(request_id, cost, by_request.get(request_id, (0, 0, None))[2])
                      for _, request_id, cost in console
                      if by_request.get(request_id, (0, 0, None))[2] != cost]
        checks.check("per request, the stored OTel cost is the console's cost_usd exactly",
                     not mismatched, repr(mismatched[:3]))
        console_sum = sum(cost for _, _, cost in sorted(console, key=lambda c: c[1]))
        stored_sum = sum(row[2] or 0 for row in sorted(joined))
        checks.check("per session, the stored OTel cost equals the console's sum exactly",
                     stored_sum == console_sum, "stored %r, console %r" % (stored_sum, console_sum))
        totals = world.rows("SELECT usage_responses, total_cost_usd FROM sessions WHERE session_id = ?",
                            (session,))
        checks.check("the session counts each response once",
                     totals and totals[0][0] == len(wanted), repr(totals))
        errors = world.rows("SELECT COUNT(*) FROM otel_events WHERE name = 'api_error' AND session_id = ?",
                            (session,))[0][0]
        checks.check("the overloaded answer is stored as an api_error", errors >= 1, str(errors))
        split = timeline_checks(world, session, len(wanted), checks)
        print("  figures: %d api_request, console $%r, stored OTel $%r, hooktrail's prices $%r; "
              "time %r" % (len(wanted), console_sum, stored_sum, totals[0][1] if totals else None,
                           split))
    finally:
        world.down()


def timeline_checks(world, session, requests, checks):
    """The timeline has a model span per request, between the tool spans,
    the API error as a marker, and the session its time split."""
    def fetch():
        timeline = world.api("/api/sessions/%s/timeline" % session)
        return timeline if len([s for s in timeline["spans"] if s[1] == "model"]) >= requests else None
    timeline = wait_for(fetch, 10) or world.api("/api/sessions/%s/timeline" % session)
    models = [span for span in timeline["spans"] if span[1] == "model"]
    tools = [span for span in timeline["spans"] if span[1] == "tool"]
    checks.check("the timeline has a model span per request", len(models) >= requests,
                 "%d model spans, %d tool spans" % (len(models), len(tools)))
    starts = sorted([("m", span[3]) for span in models] + [("t", span[3]) for span in tools],
                    key=lambda item: item[1])
    kinds = "".join(kind for kind, _ in starts)
    checks.check("model spans lie between the tool spans", "mtmtmt" in kinds, kinds)
    errors = [marker for marker in timeline["markers"] if marker[1] == "ApiError"]
    checks.check("the API error is a marker", len(errors) >= 1, repr(errors[:1]))
    detail = world.api("/api/sessions/%s" % session)
    split = detail.get("time") or {}
    checks.check("/api/sessions/{id} splits model, tool and waiting time",
                 (split.get("model_ms") or 0) > 0 and (split.get("tool_ms") or 0) > 0, repr(split))
    completeness = detail["session"]["completeness"]
    checks.check("the completeness line: no request on one side only",
                 completeness.get("otel_only_requests") == 0
                 and completeness.get("transcript_only_requests") == 0, repr(completeness))
    return split


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--claude", required=True)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--protocol", default="both",
                        choices=["http/protobuf", "http/json", "both"])
    parser.add_argument("--timeout", type=int, default=180)
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    checks = Checks()
    protocols = ["http/protobuf", "http/json"] if options.protocol == "both" else [options.protocol]
    for protocol in protocols:
        run(options, protocol, checks)
    print("%s: %d check(s) failed" % ("FAIL" if checks.failed else "PASS", checks.failed))
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
