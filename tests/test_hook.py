"""The Claude Code hook, run as Claude Code runs it: `python -m bridge.hook` in a subprocess, JSON on stdin.

The tests play the bridge where one is needed: they take the approval event file from the events folder (as the
bridge does once it has stored the event) and write the response file a button press would produce.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.events.parse import parse_file
from bridge.events.priority import Priority
from bridge.hook import decision, describe, jsonlite, transcript
from bridge.hook.payload import HookInput

ROOT = Path(__file__).resolve().parent.parent
ALLOW = '{"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}}'
SESSION = "5f0c1c52-7d3e-4a8e-9d61-0e5b8f3c2a10"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "events").mkdir()
    (tmp_path / "responses").mkdir()
    return tmp_path


def hook_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_TELEGRAM_")}
    env.update(
        CC_TELEGRAM_HOME=str(home),
        CC_TELEGRAM_EVENTS_DIR=str(home / "events"),
        CC_TELEGRAM_RESPONSES_DIR=str(home / "responses"),
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def hook_input(event: str, **fields) -> bytes:
    document = {
        "hook_event_name": event,
        "session_id": SESSION,
        "cwd": "/home/dev/shop",
        "transcript_path": "/nonexistent/transcript.jsonl",
        **fields,
    }
    return json.dumps(document).encode()


def permission_input(tool_name: str = "Bash", **tool_input) -> bytes:
    tool_input = tool_input or {"command": "git push origin main", "description": "Push the release"}
    return hook_input("PermissionRequest", tool_name=tool_name, tool_input=tool_input)


def run_hook(
    home: Path, stdin: bytes, *, args: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args, "-m", "bridge.hook"],
        input=stdin,
        capture_output=True,
        env=hook_env(home, **env),
        cwd=home,
        timeout=20,
    )


def start_hook(home: Path, stdin: bytes, **env: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.hook"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=hook_env(home, **env),
        cwd=home,
    )
    proc.stdin.write(stdin)
    proc.stdin.close()
    proc.stdin = None  # closed: communicate() must not flush it
    return proc


def finish(proc: subprocess.Popen, timeout: float = 20) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out.decode(), err.decode()


def event_files(home: Path) -> list[Path]:
    return sorted((home / "events").iterdir())


def take_approval(home: Path, timeout: float = 10) -> tuple[Path, dict]:
    """Wait for the hook's approval event file; parse it, then remove it as the bridge does once stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (home / "events").glob("cc_hook_permission_*.json"):
            document = json.loads(path.read_bytes())
            parse_file(path)  # a valid event, or this raises
            path.unlink()
            return path, document
        time.sleep(0.005)
    raise AssertionError("the hook wrote no approval event")


def answer(home: Path, event: dict, decision: str, *, action: str | None = None, **fields) -> Path:
    """A response file as DESIGN.md describes it, written atomically like the bridge writes it."""
    action = action or {"approved": "approve", "denied": "deny"}.get(decision, "approve")
    body = {
        "timestamp": "2026-05-04T10:00:00Z",
        "user_id": 4242,
        "username": "alice",
        "first_name": "Alice",
        "callback_data": f"{action}_{event['task_id']}",
        "original_message_id": 77,
        "response_type": "callback_query",
        "event_id": event["event_id"],
        "task_id": event["task_id"],
        "decision": decision,
        **fields,
    }
    path = home / "responses" / f"telegram_callback_4242_20260504_100000_{os.urandom(4).hex()}.json"
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(body))
    os.replace(temp, path)
    return path


def approve_next(
    home: Path, proc: subprocess.Popen, decision: str, **kwargs
) -> tuple[dict, tuple[int, str, str]]:
    _, event = take_approval(home)
    answer(home, event, decision, **kwargs)
    return event, finish(proc)


# --- Stop, SubagentStop, Notification ---------------------------------------------------------------------------


def test_stop_writes_one_valid_task_completion_event_and_prints_nothing(home, tmp_path):
    transcript = tmp_path / "transcript.jsonl"
    lines = [
        {"type": "user", "message": {"role": "user", "content": "add a cart"}},
        {
            "type": "assistant",
            "message": {"content": [{"type": "text", "text": "Cart added; 12 tests pass."}]},
        },
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "Bash", "input": {}}]}},
    ]
    transcript.write_text("".join(json.dumps(line) + "\n" for line in lines))

    done = run_hook(home, hook_input("Stop", transcript_path=str(transcript), stop_hook_active=False))

    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    [path] = event_files(home)  # no temp file left beside it
    assert path.name.startswith("cc_hook_stop_") and path.suffix == ".json"
    event = parse_file(path)
    assert event.type == "task_completion"
    assert event.title == "Claude finished in shop"
    assert event.description == "Cart added; 12 tests pass."
    assert event.source == "claude-code"
    assert event.task_id == SESSION
    assert event.data["status"] == "completed"
    assert event.data["metadata"] == {
        "session_id": SESSION,
        "cwd": "/home/dev/shop",
        "project": "shop",
        "hook_event": "Stop",
        "stop_hook_active": False,
    }


def test_stop_prefers_the_last_assistant_message_claude_code_hands_over(home):
    done = run_hook(home, hook_input("Stop", last_assistant_message="All done."))

    assert done.returncode == 0
    [path] = event_files(home)
    assert parse_file(path).description == "All done."


def test_subagent_stop_reports_the_subagent_from_its_own_transcript(home, tmp_path):
    own = tmp_path / "agent.jsonl"
    own.write_text(json.dumps({"type": "assistant", "message": {"content": "Found 3 call sites."}}) + "\n")

    done = run_hook(home, hook_input("SubagentStop", agent_type="Explore", agent_transcript_path=str(own)))

    assert done.returncode == 0
    event = parse_file(event_files(home)[0])
    assert event.title == "Explore subagent finished in shop"
    assert event.description == "Found 3 call sites."


def test_a_long_transcript_is_read_from_its_tail_only(tmp_path):
    path = tmp_path / "long.jsonl"
    filler = json.dumps({"type": "user", "message": {"content": "x" * 1000}}) + "\n"
    last = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "Done."}]}})
    path.write_text(filler * 5000 + last + "\n")  # 5 MB, far more than the tail

    hook = HookInput({"hook_event_name": "Stop", "transcript_path": str(path)})

    assert transcript.last_words(hook) == "Done."
    assert transcript.last_assistant_text(last[5:].encode()) == ""  # a line cut by the tail is no message


def test_notification_writes_an_info_notification_with_the_message(home):
    stdin = hook_input(
        "Notification", message="Claude is waiting for your input", notification_type="idle_prompt"
    )

    done = run_hook(home, stdin)

    assert (done.returncode, done.stdout) == (0, b"")
    [path] = event_files(home)
    event = parse_file(path)
    assert event.type == "info_notification"
    assert event.title == "Claude is waiting for your input in shop"
    assert event.description == "Claude is waiting for your input"
    assert event.data["metadata"]["notification_type"] == "idle_prompt"
    assert event.task_id == SESSION


def test_a_missing_events_folder_is_created(tmp_path):
    done = run_hook(tmp_path, hook_input("Stop"), CC_TELEGRAM_EVENTS_DIR=str(tmp_path / "new" / "events"))

    assert done.returncode == 0
    assert len(list((tmp_path / "new" / "events").iterdir())) == 1


# --- PermissionRequest ------------------------------------------------------------------------------------------


def test_approved_on_telegram_prints_exactly_the_allow_decision(home):
    proc = start_hook(home, permission_input())

    event, (status, out, err) = approve_next(home, proc, "approved")

    assert (status, out, err) == (0, ALLOW + "\n", "")
    assert event["title"] == "Allow Bash?"
    assert event["type"] == "approval_request"
    assert event["task_id"].startswith("perm-") and event["event_id"].startswith("hook-")
    assert event["data"]["approval_prompt"] == "Push the release\n$ git push origin main"
    assert event["data"]["options"] == ["Allow", "Deny"]
    assert event["data"]["metadata"]["hook_session_id"] == SESSION
    assert event["data"]["metadata"]["tool_name"] == "Bash"
    assert event["data"]["metadata"]["cwd"] == "/home/dev/shop"


def test_the_approval_is_an_urgent_valid_event(home):
    proc = start_hook(home, permission_input(), CC_TELEGRAM_HOOK_TIMEOUT="5")
    deadline = time.monotonic() + 10
    while not (paths := list((home / "events").glob("cc_hook_permission_*.json"))):
        assert time.monotonic() < deadline
        time.sleep(0.005)

    event = parse_file(paths[0])
    paths[0].unlink()
    answer(home, {"event_id": event.event_id, "task_id": event.task_id}, "denied")
    finish(proc)

    assert event.is_approval and event.priority == Priority.URGENT
    assert event.description == "Claude Code asks to use Bash in shop."


def test_denied_on_telegram_prints_deny_with_who_denied(home):
    proc = start_hook(home, permission_input())

    _, (status, out, _) = approve_next(home, proc, "denied")

    assert status == 0
    assert json.loads(out) == {
        "hookSpecificOutput": {
            "hookEventName": "PermissionRequest",
            "decision": {"behavior": "deny", "message": "Denied from Telegram by @alice"},
        }
    }


def test_answers_to_other_events_and_non_decisions_are_not_taken_for_this_one(home):
    proc = start_hook(home, permission_input())
    _, event = take_approval(home)

    answer(home, {"event_id": "someone-else", "task_id": "perm-other"}, "denied", action="deny")
    answer(home, event, "", action="details")
    time.sleep(0.1)
    assert proc.poll() is None  # still waiting
    answer(home, event, "approved")

    assert finish(proc)[1] == ALLOW + "\n"


@pytest.mark.parametrize(("closed", "said"), [("timeout", "expired"), ("answered", "another option")])
def test_an_approval_closed_without_allow_or_deny_prints_nothing_so_claude_code_asks(home, closed, said):
    proc = start_hook(home, permission_input())

    _, (status, out, err) = approve_next(home, proc, closed, action="opt2")

    assert (status, out) == (0, "")
    assert said in err


def test_no_answer_within_the_hook_timeout_prints_nothing(home):
    proc = start_hook(home, permission_input(), CC_TELEGRAM_HOOK_TIMEOUT="1")
    take_approval(home)  # the bridge took it, and nobody presses anything

    status, out, err = finish(proc, timeout=5)  # 1 s of waiting, with room for a slow start

    assert (status, out) == (0, "")
    assert "no answer" in err


def test_when_the_bridge_is_not_running_the_approval_is_taken_back_and_nothing_printed(home):
    done = run_hook(home, permission_input(), CC_TELEGRAM_HOOK_PICKUP_SECONDS="0.3")

    assert (done.returncode, done.stdout) == (0, b"")
    assert event_files(home) == []  # a bridge started later must not ask a stale question
    assert b"not running" in done.stderr


def test_an_approval_the_bridge_refuses_ends_the_wait_at_once(home):
    proc = start_hook(home, permission_input())
    deadline = time.monotonic() + 10
    while not (paths := list((home / "events").glob("cc_hook_permission_*.json"))):
        assert time.monotonic() < deadline
        time.sleep(0.005)

    (home / "events" / "failed").mkdir()
    paths[0].rename(home / "events" / "failed" / paths[0].name)  # as the bridge quarantines a bad file
    status, out, err = finish(proc, timeout=5)

    assert (status, out) == (0, "")
    assert "refused" in err


def test_a_hook_cancelled_by_claude_code_takes_its_approval_back_quietly(home):
    proc = start_hook(home, permission_input(), CC_TELEGRAM_HOOK_PICKUP_SECONDS="60")
    deadline = time.monotonic() + 10
    while not event_files(home):
        assert time.monotonic() < deadline
        time.sleep(0.005)

    proc.terminate()
    status, out, err = finish(proc)

    assert (status, out, err) == (0, "", "")
    assert event_files(home) == []


def test_allow_for_this_session_answers_the_same_tool_at_once_and_only_that_tool(home):
    proc = start_hook(home, permission_input())
    approve_next(home, proc, "approved", action="always")

    again = run_hook(home, permission_input(command="rm -rf build"), CC_TELEGRAM_HOOK_PICKUP_SECONDS="0.3")
    assert (again.returncode, again.stdout.decode()) == (0, ALLOW + "\n")
    assert event_files(home) == []  # nothing was asked

    other_tool = start_hook(
        home, permission_input("Write", file_path="/home/dev/shop/a.py", content="x = 1\n")
    )
    event, (_, out, _) = approve_next(home, other_tool, "denied")
    assert event["title"] == "Allow Write?"
    assert "deny" in out

    other_session = run_hook(
        home,
        hook_input("PermissionRequest", session_id="another", tool_name="Bash", tool_input={"command": "ls"}),
        CC_TELEGRAM_HOOK_PICKUP_SECONDS="0.3",
    )
    assert other_session.stdout == b""  # asked (and found no bridge), not allowed


def test_a_session_grant_ends_after_its_time_limit(home):
    proc = start_hook(home, permission_input(), CC_TELEGRAM_HOOK_GRANT_SECONDS="0.5")
    approve_next(home, proc, "approved", action="always")
    time.sleep(0.6)

    later = run_hook(home, permission_input(), CC_TELEGRAM_HOOK_PICKUP_SECONDS="0.3")

    assert later.stdout == b""


# --- robustness -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stdin",
    [b"", b"not json", b"[1, 2]", b'{"session_id": "x"}', b"\xff\xfe{", b'{"hook_event_name": 5}'],
    ids=["empty", "not-json", "array", "no-event-name", "bad-utf8", "event-name-not-text"],
)
def test_bad_input_exits_0_silently_with_one_line_on_stderr(home, stdin):
    done = run_hook(home, stdin)

    assert (done.returncode, done.stdout) == (0, b"")
    assert done.stderr.count(b"\n") == 1 and b"Traceback" not in done.stderr
    assert event_files(home) == []


def test_an_unwritable_events_folder_exits_0_with_one_line_on_stderr(home):
    blocker = home / "a-file"
    blocker.write_text("not a folder")

    done = run_hook(home, hook_input("Stop"), CC_TELEGRAM_EVENTS_DIR=str(blocker / "events"))

    assert (done.returncode, done.stdout) == (0, b"")
    assert done.stderr.startswith(b"cctelegram hook: cannot write") and done.stderr.count(b"\n") == 1


def test_a_hook_event_it_does_not_handle_is_ignored(home):
    done = run_hook(home, hook_input("PreToolUse", tool_name="Bash", tool_input={"command": "ls"}))

    assert (done.returncode, done.stdout) == (0, b"")
    assert event_files(home) == []


@pytest.mark.parametrize("path", ["Stop", "PermissionRequest"])
def test_the_hook_imports_none_of_django_pydantic_telegram_or_json(home, path):
    if path == "PermissionRequest":  # answered from a session grant, so it runs its whole path at once
        grants = {"grants": [{"session_id": SESSION, "tool_name": "Bash", "expires_at": time.time() + 60}]}
        (home / "hook_grants.json").write_text(json.dumps(grants))
    stdin = hook_input("Stop") if path == "Stop" else permission_input()

    done = run_hook(home, stdin, args=("-X", "importtime"))

    assert done.returncode == 0
    imported = {line.split("|")[-1].strip() for line in done.stderr.decode().splitlines() if "|" in line}
    assert "bridge.hook.run" in imported
    assert not {m.split(".")[0] for m in imported} & {"django", "pydantic", "telegram", "watchfiles", "json"}


# --- what the approval shows ------------------------------------------------------------------------------------


def test_an_edit_is_summarised_with_line_counts_and_first_lines():
    summary = describe.tool_summary(
        "Edit",
        {
            "file_path": "/home/dev/shop/cart.py",
            "old_string": "a = 1\nb = 2",
            "new_string": "a = 10\nb = 20\nc = 30",
        },
        "/home/dev/shop",
    )

    assert summary == "Edit cart.py\n-2 / +3 lines\n- a = 1\n- b = 2\n+ a = 10\n+ b = 20\n+ c = 30"


def test_a_write_is_summarised_with_its_size_and_first_lines():
    content = "".join(f"line {n}\n" for n in range(1, 301))

    summary = describe.tool_summary(
        "Write", {"file_path": "/tmp/out.txt", "content": content}, "/home/dev/shop"
    )

    lines = summary.splitlines()
    assert lines[0] == f"Write /tmp/out.txt ({len(content) / 1024:.1f} KB, 300 lines)"
    assert lines[1:] == ["  line 1", "  line 2", "  line 3", "  line 4", "  line 5", "  … (295 more lines)"]


def test_other_tools_show_a_bounded_json_preview():
    summary = describe.tool_summary("mcp__db__query", {"sql": "SELECT 1", "rows": list(range(2000))})

    assert summary.startswith('mcp__db__query with input:\n{"sql": "SELECT 1", "rows": [0, 1, 2')
    assert len(summary) <= describe.MAX_PREVIEW + 50 and summary.endswith("…")


def test_text_no_event_may_hold_is_replaced():
    assert describe.clean("a\x00b\ud800c", 100) == "a\ufffdb?c"
    assert describe.clean("x" * 300, 200) == "x" * 199 + "…"


def test_a_response_decides_only_its_own_approval():
    mine = {
        "event_id": "hook-1",
        "task_id": "perm-1",
        "decision": "approved",
        "callback_data": "approve_perm-1",
    }

    assert decision.read_response(mine, "hook-1", "perm-1").behavior == "allow"
    assert decision.read_response(mine, "hook-2", "perm-2") is None
    assert (
        decision.read_response(
            {**mine, "decision": "", "callback_data": "deny_perm-1"}, "x", "perm-1"
        ).behavior
        == "deny"
    )
    always = decision.read_response({**mine, "callback_data": "always_perm-1"}, "hook-1", "perm-1")
    assert always.behavior == "allow" and always.for_session


# --- the JSON codec the hook uses instead of the json package ----------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_json_values)
def test_jsonlite_reads_and_writes_as_the_json_package_does(value):
    assert jsonlite.dumps(value) == json.dumps(value)
    compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert jsonlite.dumps(value, ensure_ascii=False, separators=(",", ":")) == compact
    assert jsonlite.loads(f" {compact}\n") == json.loads(compact)


@pytest.mark.parametrize("text", ["", " ", "{", "[1,]", '{"a": 1} x', '"\x01"', "{'a': 1}"])
def test_jsonlite_refuses_what_the_json_package_refuses(text):
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsonlite.loads(text)
