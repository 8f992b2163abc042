#!/usr/bin/env python3
"""Budgets end to end with the real Claude Code CLI (issue 19).

A scripted session (scripts/e2e/fake_anthropic.py) makes Bash tool calls
whose responses cost about $0.01 each (3,334 Sonnet 4.5 input tokens at $3
per million), through the real hooktrail-emit and a real collector, with
the hook delivering through Redis or through the collector's socket:

1. session budget $0.03: once the spend passes the limit, at most one more
   tool call runs; the next ones are denied (their files are not created)
   and the transcript shows the reason;
2. a new prompt in the same session (`--resume`) is blocked;
3. after an approver grants more (POST /api/budgets/grant), work goes on;
4. a day budget ($0.035 for all sessions) holds across two sessions.

    python3 scripts/e2e/budgets.py --claude PATH --bin-dir DIR [--mode redis|socket|both] [--keep]

Prints one line per check; exit 0 only if every check passes.
"""
import argparse
import glob
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
# One response's usage: 3,334 input tokens of Sonnet 4.5 = $0.010002.
USAGE = {"input_tokens": 3334, "output_tokens": 0}
SESSION_REASON = "hooktrail: session budget $0.03 reached"
DAY_REASON = "hooktrail: all day budget daily $0.04 reached"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(predicate, timeout, step=0.1):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value or time.time() >= deadline:
            return value
        time.sleep(step)


def touch_turns(names, then_text="Stopped."):
    """One Bash call per name (each in its own response), then a text end."""
    turns = [{"name": name, "usage": USAGE, "content": [
        {"type": "tool_use", "id": "toolu_" + name, "name": "Bash",
         "input": {"command": "touch %s.txt" % name, "description": "make " + name}}]}
        for name in names]
    turns.append({"name": "end-" + names[-1], "usage": USAGE,
                  "content": [{"type": "text", "text": then_text}]})
    return turns



def port_open(port):
    """Whether something accepts connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False

class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, name, ok, detail=""):
        print("  [%s] %s%s" % ("ok" if ok else "FAIL", name, (": " + detail) if detail else ""))
        if not ok:
            self.failed += 1


class World:
    """One throwaway HOME with Redis (mode redis), a collector, the fake API
    and the hook installed."""

    def __init__(self, options, mode, budgets, turns):
        self.options = options
        self.mode = mode
        self.dir = tempfile.mkdtemp(prefix="hooktrail-budgets-%s-" % mode)
        self.home = os.path.join(self.dir, "home")
        self.project = os.path.join(self.dir, "project")
        self.processes = []
        for d in (self.home, self.project, os.path.join(self.home, ".claude")):
            os.makedirs(d, exist_ok=True)
        self.runtime = os.path.join(self.dir, "run")
        os.makedirs(self.runtime, mode=0o700)
        self.config_dir = os.path.join(self.home, ".config", "hooktrail")
        os.makedirs(self.config_dir, mode=0o700)
        with open(os.path.join(self.config_dir, "config.json"), "w") as f:
            json.dump({"budgets": budgets}, f)
        os.chmod(os.path.join(self.config_dir, "config.json"), 0o600)
        self.db = os.path.join(self.dir, "events.db")
        self.http_port = free_port()
        self.script = os.path.join(self.dir, "script.json")
        with open(self.script, "w") as f:
            json.dump({"turns": turns}, f)
        subprocess.run("git init -q && git -c user.email=d@e.invalid -c user.name=d commit -q "
                       "--allow-empty -m init", shell=True, cwd=self.project, check=True)
        with open(os.path.join(self.home, ".claude.json"), "w") as f:
            json.dump({"hasCompletedOnboarding": True, "numStartups": 5,
                       "projects": {self.project: {"hasTrustDialogAccepted": True}}}, f)

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANTHROPIC", "CLAUDE", "OTEL", "HOOKTRAIL", "XDG_"))}
        env.update({"HOME": self.home, "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
                    "XDG_STATE_HOME": os.path.join(self.home, ".local", "state"),
                    "XDG_DATA_HOME": os.path.join(self.home, ".local", "share"),
                    "XDG_RUNTIME_DIR": self.runtime,
                    "HOOKTRAIL_SOCKET": os.path.join(self.runtime, "collector.sock"),
                    "HOOKTRAIL_SPOOL_DIR": os.path.join(self.dir, "spool")})
        if self.mode == "redis":
            env["HOOKTRAIL_REDIS_URL"] = "redis://127.0.0.1:%d/0" % self.redis_port
        return env

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.processes.append(process)
        return process

    def up(self):
        if self.mode == "redis":
            self.redis_port = free_port()
            self.start("redis", ["redis-server", "--port", str(self.redis_port), "--bind",
                                 "127.0.0.1", "--save", "", "--appendonly", "no"])
            if not wait_for(lambda: subprocess.run(
                    ["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True,
                    text=True).stdout.strip() == "PONG", 10):
                raise RuntimeError("redis-server did not start")
        argv = [os.path.join(self.options.bin_dir, "hooktrail-collector"), "--db", self.db,
                "--http", "127.0.0.1:%d" % self.http_port, "--no-token"]
        self.start("collector", argv, env=self.env())
        key = os.path.join(self.config_dir, "approvals.key")
        if not wait_for(lambda: self.api("GET", "/api/health")[0] == 200 and os.path.exists(key), 20):
            raise RuntimeError("the collector did not come up (%s/collector.log)" % self.dir)
        done = subprocess.run([os.path.join(self.options.bin_dir, "hooktrail-emit"), "install",
                               "--settings", os.path.join(self.home, ".claude", "settings.json")],
                              env=self.env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("install failed: " + done.stderr)
        self.fake_port = free_port()
        self.start("fake", [sys.executable, os.path.join(HERE, "fake_anthropic.py"), "--script",
                            self.script, "--port", str(self.fake_port), "--log-dir", self.dir])
        if not wait_for(lambda: self.port_open(self.fake_port), 10):
            raise RuntimeError("fake_anthropic.py did not start")

    port_open = staticmethod(port_open)

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.http_port, path), data=data, method=method,
            headers={"Host": "127.0.0.1:%d" % self.http_port, "Authorization": "Bearer x",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except OSError:
            return 0, None

    def claude(self, prompt, resume=None):
        env = self.env()
        env.update({"ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % self.fake_port,
                    "ANTHROPIC_API_KEY": "sk-ant-test-key", "DISABLE_AUTOUPDATER": "1",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "IS_SANDBOX": "1"})
        argv = [self.options.claude, "-p", "--verbose", "--output-format", "stream-json",
                "--dangerously-skip-permissions", "--model", "claude-sonnet-4-5"]
        if resume:
            argv += ["--resume", resume]
        argv.append(prompt)
        done = subprocess.run(argv, cwd=self.project, env=env, capture_output=True, text=True,
                              timeout=self.options.timeout)
        session = None
        for line in done.stdout.splitlines():
            try:
                session = session or json.loads(line).get("session_id")
            except ValueError:
                pass
        return session, done.stdout

    def transcript(self, session):
        return "".join(open(p).read() for p in glob.glob(os.path.join(
            self.home, ".claude", "projects", "*", session + ".jsonl")))

    def spend(self, session):
        with sqlite3.connect("file:%s?mode=ro" % self.db, uri=True) as db:
            row = db.execute("SELECT total_cost_usd FROM sessions WHERE session_id = ?",
                             (session,)).fetchone()
        return row[0] if row else 0.0

    def metrics(self):
        request = urllib.request.Request("http://127.0.0.1:%d/metrics" % self.http_port,
                                         headers={"Host": "127.0.0.1:%d" % self.http_port})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()

    def model_requests(self):
        """Requests of the main loop (those that carry tools) the fake API got."""
        with open(os.path.join(self.dir, "requests.jsonl")) as f:
            return sum(1 for line in f if '"tools"' in line)

    def made(self, name):
        return os.path.exists(os.path.join(self.project, name + ".txt"))

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


def tool_result(transcript, tool_use_id):
    for line in transcript.splitlines():
        try:
            content = (json.loads(line).get("message") or {}).get("content")
        except ValueError:
            continue
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("tool_use_id") == tool_use_id:
                text = block.get("content")
                return text if isinstance(text, str) else json.dumps(text)
    return None


def session_budget(options, mode, checks):
    print("session budget, through %s" % mode)
    turns = touch_turns(["s1", "s2", "s3", "s4", "s5"])
    turns += touch_turns(["after"], then_text="Done.")
    world = World(options, mode, [{"name": "per-session", "scope": "session", "usd": 0.03}], turns)
    try:
        world.up()
        session, _ = world.claude("make files")
        checks.check("the session ran", bool(session))
        spent = world.spend(session)
        ran = [name for name in ("s1", "s2", "s3", "s4", "s5") if world.made(name)]
        checks.check("the calls before the limit ran", ran[:3] == ["s1", "s2", "s3"], repr(ran))
        checks.check("at most one call ran after the spend passed the limit",
                     ran in (["s1", "s2", "s3"], ["s1", "s2", "s3", "s4"]), repr(ran))
        checks.check("the call after that was denied (its file is not there)", not world.made("s5"))
        transcript = world.transcript(session)
        denied = tool_result(transcript, "toolu_s5") or ""
        checks.check("the transcript shows the reason", SESSION_REASON in denied, repr(denied[:160]))
        checks.check("spend is past $0.03", spent >= 0.03, "$%.4f" % spent)
        status, answer = world.api("GET", "/api/budgets?session=" + session)
        checks.check("/api/budgets shows the session over", status == 200 and (answer or {}).get(
            "refusal", {}) and answer["refusal"]["budget"] == "per-session", repr(answer)[:200])
        timeline = wait_for(lambda: (lambda t: t if any(
            m[1] == "BudgetRefused" for m in (t or {}).get("markers", [])) else None)(
            world.api("GET", "/api/sessions/%s/timeline" % session)[1]), 10) or {}
        denied_spans = [span for span in timeline.get("spans", []) if span[5] == "denied"]
        reasons = [m[4] for m in timeline.get("markers", []) if m[1] == "BudgetRefused"]
        checks.check("the timeline shows the refused calls as denied, with the reason",
                     len(denied_spans) >= 1 and all(SESSION_REASON in r for r in reasons),
                     "%d denied spans, reasons %r" % (len(denied_spans), reasons[:1]))
        metrics = world.metrics()
        checks.check("/metrics counts the refusals",
                     'hooktrail_budget_denials_total{budget="per-session"}' in metrics,
                     [l for l in metrics.splitlines() if "budget_denials" in l][-1:].__repr__())
        requests_before = world.model_requests()
        _, out = world.claude("one more thing", resume=session)
        requests_after = world.model_requests()
        checks.check("a new prompt in the session (--resume) is blocked",
                     SESSION_REASON in out and requests_after == requests_before,
                     "%d API requests after; %s" % (requests_after - requests_before,
                                                    repr(out[-200:])))
        status, answer = world.api("POST", "/api/budgets/grant", {
            "budget": "per-session", "subject": session, "usd": 1, "reason": "finish the job"})
        checks.check("an approver grants $1 more", status == 200, repr(answer))
        wait_for(lambda: not (world.api("GET", "/api/budgets?session=" + session)[1] or {}).get(
            "refusal"), 10)
        if mode == "redis":
            # The mirrored refusal is deleted when the verdict lifts.
            key = "hooktrail:events:verdict:session:" + session
            gone = wait_for(lambda: subprocess.run(
                ["redis-cli", "-p", str(world.redis_port), "EXISTS", key], capture_output=True,
                text=True).stdout.strip() == "0", 10)
            checks.check("the Redis verdict is gone after the grant", gone)
        world.claude("go on", resume=session)
        checks.check("after the grant, work goes on (its file exists)", world.made("after"))
        with sqlite3.connect("file:%s?mode=ro" % world.db, uri=True) as db:
            rows = db.execute("SELECT kind, decided_by, reason FROM decisions WHERE kind = "
                              "'budget_grant'").fetchall()
        checks.check("the grant is in the audit trail", rows == [("budget_grant", "owner",
                                                                  "finish the job")], repr(rows))
    finally:
        world.down()


def day_budget(options, mode, checks):
    print("day budget across two sessions, through %s" % mode)
    turns = touch_turns(["a1", "a2"], then_text="A done.") + touch_turns(["b1", "b2", "b3"])
    world = World(options, mode, [{"name": "daily", "scope": "all", "period": "day",
                                   "usd": 0.04}], turns)
    try:
        world.up()
        first, _ = world.claude("session a")
        checks.check("session a's calls ran", world.made("a1") and world.made("a2"))
        second, _ = world.claude("session b")
        checks.check("two sessions", bool(first) and bool(second) and first != second)
        ran = [name for name in ("b1", "b2", "b3") if world.made(name)]
        # a: 3 responses ($0.03); b1's response passes $0.04; b2 may still run.
        checks.check("session b is stopped by the day's spend, not its own",
                     ran in (["b1"], ["b1", "b2"]) and not world.made("b3"), repr(ran))
        denied = tool_result(world.transcript(second), "toolu_b3") or ""
        checks.check("the transcript shows the day budget's reason", DAY_REASON in denied,
                     repr(denied[:160]))
    finally:
        world.down()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--claude", required=True)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--mode", default="both", choices=["redis", "socket", "both"])
    parser.add_argument("--timeout", type=int, default=180)
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    checks = Checks()
    modes = ["redis", "socket"] if options.mode == "both" else [options.mode]
    for mode in modes:
        session_budget(options, mode, checks)
        day_budget(options, mode, checks)
    print("%s: %d check(s) failed" % ("FAIL" if checks.failed else "PASS", checks.failed))
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
