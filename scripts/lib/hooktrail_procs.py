"""Process helpers shared by the fault-suite scripts (chaos, soak, multi-host).

Each helper runs a real binary: redis-server, hooktrail-collector,
hooktrail-emit, sqlite3. Nothing here is a mock.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def log(*parts):
    print("[%s]" % time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def cargo_profile():
    """The cargo profile to build and run: release, unless
    HOOKTRAIL_CARGO_PROFILE names another (scripts/test uses `ci`, release
    without fat LTO, so CI builds its dependencies once)."""
    return os.environ.get("HOOKTRAIL_CARGO_PROFILE", "release")


def release_dir():
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "x86_64-unknown-linux-gnu" / cargo_profile()


def build_release():
    log(f"building {cargo_profile()} binaries")
    subprocess.run(["cargo", "build", "--profile", cargo_profile(), "--workspace", "--bins"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    bins = release_dir()
    for name in ("hooktrail-emit", "hooktrail-collector"):
        if not (bins / name).exists():
            sys.exit(f"missing {bins / name} after the build")
    return bins


def require(command, package):
    if shutil.which(command) is None:
        sys.exit(f"{command} not found: install it with apt-get install {package} (or run scripts/setup)")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(what, deadline_seconds, condition, pause=0.02):
    end = time.monotonic() + deadline_seconds
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(pause)
    raise TimeoutError(f"timed out after {deadline_seconds}s waiting for {what}")


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Redis:
    """A private redis-server whose stream survives SIGKILL (AOF, fsync always)."""

    def __init__(self, workdir, port=None, bind="127.0.0.1"):
        self.port = port or free_port()
        self.bind = bind
        self.dir = Path(workdir) / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = None

    def url(self):
        return f"redis://{self.bind}:{self.port}"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", self.bind, "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until("redis to answer", 10, lambda: self.ping())

    def ping(self):
        try:
            with socket.create_connection((self.bind, self.port), timeout=0.3) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None
        wait_until("redis port to close", 5, lambda: not port_open(self.bind, self.port))


class SilentListener:
    """Accepts connections on Redis's port and never answers."""

    def __init__(self, bind, port):
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((bind, port))
        self.server.listen(512)
        self.held = []
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.server.settimeout(0.1)
        while not self.stopped:
            try:
                conn, _ = self.server.accept()
                self.held.append(conn)
            except OSError:
                pass

    def close(self):
        self.stopped = True
        self.thread.join()
        for conn in self.held:
            conn.close()
        self.server.close()


class Collector:
    """A real hooktrail-collector process."""

    def __init__(self, bins, workdir, args, env=None):
        self.bins = bins
        self.workdir = Path(workdir)
        self.args = args
        self.env = dict(os.environ, **(env or {}))
        self.process = None
        self.log = open(self.workdir / "collector.log", "ab")

    def start(self):
        self.process = subprocess.Popen([str(self.bins / "hooktrail-collector"), *self.args],
                                        env=self.env, stdout=self.log, stderr=self.log)

    def kill(self):
        if self.process:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self):
        if self.process:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def sqlite_query(db, sql):
    """Runs one query with the sqlite3 CLI, as a user would; returns rows of text."""
    result = subprocess.run(["sqlite3", "-cmd", ".timeout 10000", f"file:{db}?mode=ro", sql],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"sqlite3 failed: {result.stderr.strip()}")
    return [line for line in result.stdout.splitlines()]


def hold_exclusive_lock(db, seconds):
    """Holds BEGIN EXCLUSIVE from a sqlite3 process for `seconds`."""
    return subprocess.Popen(["sqlite3", "-cmd", ".timeout 10000", str(db), "BEGIN EXCLUSIVE;",
                             f".shell sleep {seconds}", "COMMIT;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def fixture_payloads():
    payloads = []
    for path in sorted((ROOT / "tests" / "fixtures").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                payloads.append(json.loads(line))
    return payloads
