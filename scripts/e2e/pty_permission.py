#!/usr/bin/env python3
"""Does Claude Code show its permission dialog while a PermissionRequest hook
runs, or only after the hook returns? (issue 18, "measure before you design
the default").

Runs the real CLI interactively in a pseudo-terminal against
fake_anthropic.py with one Bash call the settings do not allow. The only
PermissionRequest hook is a shell script that records when it starts and
ends, sleeps HOLD seconds, and then prints the decision given by --answer
(nothing, allow or deny). The terminal's output is read with timestamps, and
the time the dialog's text first appears is compared with the hook's start
and end. With --press-yes the script answers the dialog in the terminal as
soon as it shows (while the hook still runs), to see which answer wins.

Python 3 standard library only:
    python3 scripts/e2e/pty_permission.py --claude PATH [--hold 8]
        [--answer none|allow|deny] [--press-yes]
It prints a JSON summary on its last line.
"""
import argparse
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\x1b[=>]")
# Words of the dialog in 2.1.330's terminal UI.
# Cursor moves stand for most spaces once the escapes are stripped, so the
# text is compared with all white space removed.
DIALOG = re.compile(r"Doyouwanttoproceed\?")

HOOK = """#!/bin/sh
cat > /dev/null
echo "start $(date +%s.%N)" >> {log}
sleep {hold}
echo "end $(date +%s.%N)" >> {log}
{answer}
exit 0
"""
ANSWERS = {
    "none": "",
    "allow": """printf '%s' '{"hookSpecificOutput":{"hookEventName":"PermissionRequest","decision":{"behavior":"allow"}}}'""",
    "deny": """printf '%s' '{"hookSpecificOutput":{"hookEventName":"PermissionRequest","decision":{"behavior":"deny","message":"hooktrail: denied by test: no"}}}'""",
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--claude", required=True)
    ap.add_argument("--hold", type=float, default=8)
    ap.add_argument("--answer", choices=sorted(ANSWERS), default="none")
    ap.add_argument("--press-yes", action="store_true")
    ap.add_argument("--keep", action="store_true")
    options = ap.parse_args()

    base = tempfile.mkdtemp(prefix="hooktrail-pty-")
    home = os.path.join(base, "home")
    project = os.path.join(home, "project")
    os.makedirs(os.path.join(home, ".claude"))
    os.makedirs(project)
    hook_log = os.path.join(base, "hook.log")
    hook = os.path.join(base, "hook.sh")
    with open(hook, "w") as f:
        f.write(HOOK.format(log=hook_log, hold=options.hold, answer=ANSWERS[options.answer]))
    os.chmod(hook, 0o755)
    with open(os.path.join(home, ".claude", "settings.json"), "w") as f:
        json.dump({"hooks": {"PermissionRequest": [{"matcher": "*", "hooks": [
            {"type": "command", "command": hook, "timeout": 60}]}]}}, f)
    with open(os.path.join(home, ".claude.json"), "w") as f:
        json.dump({"hasCompletedOnboarding": True, "numStartups": 5, "theme": "dark",
                   # The interactive UI asks once whether to use a key from
                   # the environment; this is the answer "yes" it stores.
                   "customApiKeyResponses": {"approved": ["sk-ant-test-key"[-20:]],
                                             "rejected": []},
                   "projects": {project: {"hasTrustDialogAccepted": True}}}, f)
    script = os.path.join(base, "script.json")
    with open(script, "w") as f:
        json.dump({"turns": [
            {"name": "t1", "content": [{"type": "tool_use", "id": "toolu_pty1", "name": "Bash",
                                        "input": {"command": "touch made.txt && rm -rf /tmp/does-not-matter-xyz",
                                                  "description": "create a file"}}]},
            {"name": "t2", "when": "toolu_pty1", "content": [{"type": "text",
                                                              "text": "Finished."}]}]}, f)
    port = free_port()
    fake = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_anthropic.py"), "--script",
                             script, "--port", str(port), "--log-dir", base],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC", "CLAUDE", "OTEL", "HOOKTRAIL", "XDG_"))}
    env.update({"HOME": home, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40",
                "ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % port,
                "ANTHROPIC_API_KEY": "sk-ant-test-key", "DISABLE_AUTOUPDATER": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "IS_SANDBOX": "1"})
    time.sleep(0.5)
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(project)
        os.execve(options.claude, [options.claude, "--permission-mode", "default",
                                    "make a file"], env)
    started = time.time()
    screen = b""
    dialog_at = None
    pressed_at = None
    answered = False
    approved_key = False
    deadline = started + options.hold + 40
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
            text = re.sub(r"\s+", "", ANSI.sub(b"", screen).decode("utf-8", "replace"))
            if dialog_at is None and DIALOG.search(text):
                dialog_at = time.time()
                if options.press_yes and not approved_key:
                    os.write(fd, b"1")
                    pressed_at = time.time()
                    approved_key = True
            if "Finished." in text and not answered:
                answered = True
                break
        # Trust dialogs and the like would block the run: none is expected.
    done_at = time.time()
    os.kill(pid, signal.SIGTERM)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    fake.terminate()
    marks = {}
    if os.path.exists(hook_log):
        for line in open(hook_log):
            kind, when = line.split()
            marks.setdefault(kind, float(when))
    rel = lambda t: None if t is None else round(t - started, 2)
    summary = {
        "answer": options.answer,
        "hold_seconds": options.hold,
        "hook_started": rel(marks.get("start")),
        "hook_ended": rel(marks.get("end")),
        "dialog_shown": rel(dialog_at),
        "pressed_yes": rel(pressed_at),
        "turn_finished": rel(done_at) if answered else None,
        "file_made": os.path.exists(os.path.join(project, "made.txt")),
    }
    with open(os.path.join(base, "screen.txt"), "wb") as f:
        f.write(ANSI.sub(b"", screen))
    if not options.keep:
        shutil.rmtree(base, ignore_errors=True)
    else:
        summary["dir"] = base
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
