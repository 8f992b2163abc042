#!/usr/bin/env python3
"""Writes realistic Claude Code transcripts for scripts/bench-import.

Layout and line shapes follow Claude Code 2.1.330 (tests/fixtures/transcripts,
TRANSCRIPTS.md): per session a <project>/<session>.jsonl with prompts,
assistant responses written as one line per content block (same usage on each),
tool_use / tool_result pairs (some failing, some large file reads), attachments,
api-request bookkeeping lines, stop_hook_summary lines, and subagents in
<project>/<session>/subagents/agent-<id>.jsonl with their .meta.json. Session
sizes vary from a few KB to tens of MB. Deterministic (seeded).

usage: gen_transcripts.py DIR TOTAL_BYTES
"""
import json
import os
import random
import sys
import uuid

out_dir, total = sys.argv[1], int(float(sys.argv[2]))
rng = random.Random(42)
MODELS = ["claude-sonnet-4-5", "claude-opus-5-5", "claude-haiku-4-5"]
TOOLS = ["Bash", "Read", "Edit", "Write", "Grep", "Glob"]
WORDS = ("the quick brown fox jumps over a lazy dog while compiling rust code "
         "and reading files from the project tree with care").split()
FILLER = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz    \n{}();=") for _ in range(1 << 20))


def text(n):
    start = rng.randrange(0, len(FILLER) - n - 1)
    return FILLER[start:start + n]


def words(n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


class Clock:
    def __init__(self):
        self.ms = 1_790_000_000_000 + rng.randrange(0, 10**10)

    def tick(self, lo=50, hi=3000):
        self.ms += rng.randrange(lo, hi)
        s, ms = divmod(self.ms, 1000)
        import time
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%03dZ" % ms


def dump(f, obj):
    line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"
    f.write(line)
    return len(line.encode())


def usage():
    w = rng.randrange(0, 5000)
    h = rng.randrange(0, w + 1) if rng.random() < 0.3 else 0
    return {"input_tokens": rng.randrange(1, 3000), "cache_creation_input_tokens": w,
            "cache_read_input_tokens": rng.randrange(0, 80000),
            "cache_creation": {"ephemeral_5m_input_tokens": w - h, "ephemeral_1h_input_tokens": h},
            "output_tokens": rng.randrange(1, 2000), "output_tokens_details": {"thinking_tokens": 0},
            "server_tool_use": {"web_search_requests": 1 if rng.random() < 0.02 else 0, "web_fetch_requests": 0},
            "service_tier": "standard", "inference_geo": "us" if rng.random() < 0.1 else ""}


def conversation(f, session, cwd, clock, model, turns, agent=None, prompt_id=None, parent=None):
    """Writes turns of a conversation; returns (bytes, [(agent_id, tool_use_id, prompt_id)])."""
    written = 0
    spawned = []
    common = {"isSidechain": agent is not None, "cwd": cwd, "sessionId": session,
              "version": "2.1.330", "gitBranch": "main", "userType": "external", "entrypoint": "cli"}
    if agent:
        common["agentId"] = agent
    for turn in range(turns):
        pid = prompt_id or str(uuid.UUID(int=rng.getrandbits(128)))
        u = str(uuid.UUID(int=rng.getrandbits(128)))
        if not agent:
            written += dump(f, {"type": "queue-operation", "operation": "enqueue", "timestamp": clock.tick(), "sessionId": session, "content": words(8)})
        written += dump(f, {"parentUuid": parent, **common, "promptId": pid, "type": "user",
                            "message": {"role": "user", "content": words(rng.randrange(5, 80))},
                            "uuid": u, "timestamp": clock.tick(), "permissionMode": "default"})
        parent = u
        if not agent and rng.random() < 0.5:
            a = str(uuid.UUID(int=rng.getrandbits(128)))
            written += dump(f, {"parentUuid": parent, **common, "attachment": {"type": "prompt_snapshot", "systemPrompt": [text(rng.randrange(2000, 40000))]},
                                "type": "attachment", "uuid": a, "timestamp": clock.tick(1, 5)})
            parent = a
        steps = rng.randrange(1, 12)
        for step in range(steps):
            written += dump(f, {"type": "api-request", "id": str(uuid.UUID(int=rng.getrandbits(128))), "querySource": "repl_main_thread",
                                "params": {"model": model, "max_tokens": 32000}, "shapeHash": "%016x" % rng.getrandbits(64)})
            if rng.random() < 0.15:
                written += dump(f, {"type": "api-request-blob", "hash": "%016x" % rng.getrandbits(64), "body": text(rng.randrange(1000, 30000))})
            msg = "msg_%024x" % rng.getrandbits(96)
            req = "req_%024x" % rng.getrandbits(96)
            last = step == steps - 1
            blocks = [{"type": "text", "text": words(rng.randrange(5, 120))}]
            calls = []
            if not last:
                for _ in range(rng.choice([1, 1, 1, 2, 3])):
                    tid = "toolu_%024x" % rng.getrandbits(96)
                    name = "Agent" if (not agent and rng.random() < 0.04) else rng.choice(TOOLS)
                    inp = {"command": words(6)} if name == "Bash" else {"file_path": cwd + "/src/" + words(1) + ".rs"}
                    if name in ("Write", "Edit"):
                        inp["content"] = text(rng.randrange(200, 8000))
                    if name == "Agent":
                        inp = {"description": words(3), "prompt": words(30), "subagent_type": "general-purpose"}
                    blocks.append({"type": "tool_use", "id": tid, "name": name, "input": inp})
                    calls.append((tid, name))
            u_ = usage()
            for block in blocks:
                a = str(uuid.UUID(int=rng.getrandbits(128)))
                written += dump(f, {"parentUuid": parent, **common, "message": {"id": msg, "type": "message", "role": "assistant", "model": model,
                                    "content": [block], "stop_reason": "end_turn" if last else "tool_use", "stop_sequence": None, "usage": u_},
                                    "requestId": req, "type": "assistant", "uuid": a, "timestamp": clock.tick(20, 400)})
                parent = a
            for tid, name in calls:
                r = str(uuid.UUID(int=rng.getrandbits(128)))
                failed = rng.random() < 0.08
                size = rng.choice([50, 200, 800, 3000, 20000]) if name != "Read" else rng.choice([2000, 20000, 100000, 400000])
                content = text(size)
                line = {"parentUuid": parent, **common, "promptId": pid, "type": "user",
                        "message": {"role": "user", "content": [{"tool_use_id": tid, "type": "tool_result", "content": content, "is_error": failed}]},
                        "uuid": r, "timestamp": clock.tick(100, 8000), "sourceToolAssistantUUID": parent}
                if name == "Agent":
                    sub = "a%016x" % rng.getrandbits(64)
                    spawned.append((sub, tid, pid))
                    line["toolUseResult"] = {"status": "completed", "agentId": sub, "totalTokens": 1234}
                elif name == "Bash":
                    line["toolUseResult"] = {"stdout": content, "stderr": "", "interrupted": False}
                else:
                    line["toolUseResult"] = {"type": "text", "file": {"filePath": cwd, "content": content}}
                written += dump(f, line)
                parent = r
        if not agent:
            written += dump(f, {"parentUuid": parent, **common, "type": "system", "subtype": "stop_hook_summary", "hookCount": 1,
                                "timestamp": clock.tick(10, 100), "uuid": str(uuid.UUID(int=rng.getrandbits(128)))})
    return written, spawned


done = 0
project_count = 0
while done < total:
    project_count += 1
    cwd = "/home/dev/project%d" % project_count
    project = os.path.join(out_dir, cwd.replace("/", "-"))
    os.makedirs(project, exist_ok=True)
    for _ in range(rng.randrange(5, 40)):
        if done >= total:
            break
        session = str(uuid.UUID(int=rng.getrandbits(128)))
        clock = Clock()
        model = rng.choice(MODELS)
        turns = int(rng.paretovariate(1.2)) + rng.randrange(0, 4)
        turns = min(turns, 120)
        with open(os.path.join(project, session + ".jsonl"), "w") as f:
            written, spawned = conversation(f, session, cwd, clock, model, turns)
            written += dump(f, {"type": "cost-state", "sessionId": session, "totalCostUSD": 1.0})
        done += written
        for sub, tid, pid in spawned:
            sub_dir = os.path.join(project, session, "subagents")
            os.makedirs(sub_dir, exist_ok=True)
            with open(os.path.join(sub_dir, "agent-%s.jsonl" % sub), "w") as f:
                done += conversation(f, session, cwd, Clock(), "claude-haiku-4-5", 1, agent=sub, prompt_id=pid)[0]
            with open(os.path.join(sub_dir, "agent-%s.meta.json" % sub), "w") as f:
                json.dump({"agentType": "general-purpose", "toolUseId": tid, "finished": True}, f)
print(done)
