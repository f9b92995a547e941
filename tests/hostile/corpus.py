"""A corpus of hostile event files, made on disk at test time (nothing large is committed).

Each `Hostile` knows how to make itself in an events folder and what the bridge must do with it:

- ``quarantined``: moved to events/failed/ beside a note whose ``code`` is the expected one;
- ``delivered``: odd but acceptable (a BOM, a strange file name, brackets inside strings): its ``title`` must reach
  Telegram;
- ``ignored``: left alone for a documented reason (``why``), e.g. a directory that merely has a .json name.

`CORPUS` lists them; `dynamic` holds the ones that need time (files that appear and vanish, files growing while
they are read), run beside the others by the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
NAME_MAX = 255


@dataclass(frozen=True)
class Hostile:
    name: str
    what: str
    outcome: str  # quarantined | delivered | ignored
    code: str | None = None
    """The quarantine code expected; "a|b" when either may come first (two links of one loop, say)."""
    title: str | None = None
    why: str = ""
    content: bytes | None = None
    make: Callable[[Path, Path], None] | None = None
    """Builds the entry in (events folder, a folder outside it); default: write ``content`` under ``name``."""

    def create(self, events: Path, outside: Path) -> None:
        if self.make is not None:
            self.make(events, outside)
        else:
            path = events / self.name
            path.write_bytes(self.content or b"")
            os.utime(path, (time.time() - 5, time.time() - 5))  # settled: no "still being written" grace

    @property
    def path_name(self) -> str:
        return self.name


def event(title: str, type_: str = "task_completion", **fields) -> dict:
    return {"type": type_, "title": title, **fields}


def raw(obj) -> bytes:
    return json.dumps(obj).encode()


def _bad(name: str, what: str, code: str, content: bytes) -> Hostile:
    return Hostile(name, what, "quarantined", code=code, content=content)


def _good(name: str, what: str, title: str, content: bytes | None = None, **kw) -> Hostile:
    return Hostile(name, what, "delivered", title=title, content=content or raw(event(title)), **kw)


# --- makers for entries that are not plain files ----------------------------------------------------------------


def _symlink(name: str, target: Callable[[Path, Path], str | Path]) -> Callable[[Path, Path], None]:
    def make(events: Path, outside: Path) -> None:
        os.symlink(target(events, outside), events / name)

    return make


def _outside_file(events: Path, outside: Path) -> Path:
    secret = outside / "secret.json"
    secret.write_bytes(raw(event("outside secret must never be sent")))
    return secret


def _inside_target(events: Path, outside: Path) -> Path:
    target = events / "kept" / "linked-event.txt"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(raw(event("hostile symlink inside the folder")))
    return target


def _inside_folder(events: Path, outside: Path) -> Path:
    folder = events / "kept" / "a-folder"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _loop(events: Path, outside: Path) -> None:
    os.symlink("loop-b.json", events / "loop-a.json")
    os.symlink("loop-a.json", events / "loop-b.json")


def _fifo(name: str) -> Callable[[Path, Path], None]:
    def make(events: Path, outside: Path) -> None:
        os.mkfifo(events / name)

    return make


def _socket(events: Path, outside: Path) -> None:
    # A unix socket named like an event: the socket file stays after the socket is closed.
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(events / "socket.json"))


def _directory(events: Path, outside: Path) -> None:
    (events / "folder.json").mkdir()
    (events / "folder.json" / "inner.json").write_bytes(raw(event("inside a folder named .json")))


def _sparse(size: int) -> Callable[[Path, Path], None]:
    def make(events: Path, outside: Path) -> None:
        path = events / "huge-100mb.json"
        with open(path, "wb") as handle:
            handle.write(b'{"type": "task_completion", "title": "')
            handle.truncate(size)  # sparse: costs no disk, but fstat says 100 MB
        os.utime(path, (time.time() - 5, time.time() - 5))

    return make


def _bad_bytes_name(events: Path, outside: Path) -> None:
    path = os.fsencode(events) + b"/name-\xff\xfe-not-utf8.json"
    with open(path, "wb") as handle:
        handle.write(b"{not json")
    os.utime(path, (time.time() - 5, time.time() - 5))


def _unreadable(events: Path, outside: Path) -> None:
    path = events / "mode-000.json"
    path.write_bytes(raw(event("hostile mode 000 file")))
    path.chmod(0)
    os.utime(path, (time.time() - 5, time.time() - 5))


# --- the corpus -------------------------------------------------------------------------------------------------

LONG_NAME = "long-" + "n" * (NAME_MAX - len("long-") - len(".json")) + ".json"
BAD_UTF8_NAME = os.fsdecode(b"name-\xff\xfe-not-utf8.json")


def build_corpus(*, running_as_root: bool) -> list[Hostile]:
    """Every static hostile entry, in the order the test drops them."""
    ok = raw(event("x"))
    corpus = [
        # Broken JSON, every shape
        _bad(
            "truncated.json", "object cut off", "invalid_json", b'{"type": "task_completion", "title": "cut'
        ),
        _bad("trailing-comma.json", "trailing comma", "invalid_json", b'{"type": "a", "title": "b",}'),
        _bad("single-quotes.json", "single quotes", "invalid_json", b"{'type': 'a', 'title': 'b'}"),
        _bad("bare-keys.json", "unquoted keys", "invalid_json", b'{type: "a", title: "b"}'),
        _bad("two-objects.json", "two objects in one file", "invalid_json", ok + ok),
        _bad("comment.json", "a // comment", "invalid_json", b"// note\n" + ok),
        _bad("garbage-after.json", "garbage after the object", "invalid_json", ok + b" trailing"),
        _bad(
            "unterminated-string.json", "string never closed", "invalid_json", b'{"type": "a, "title": "b"}'
        ),
        _bad("lone-brace.json", "a lone }", "invalid_json", b"}"),
        _bad("prose.json", "not JSON at all", "invalid_json", b"Build finished, all good!"),
        _bad("raw-nul.json", "a NUL byte between tokens", "invalid_json", ok[:-1] + b"\x00}"),
        _bad(
            "control-char.json",
            "raw control character in a string",
            "invalid_json",
            b'{"type": "a", "title": "x\x01y"}',
        ),
        # Not an object / wrong types
        _bad("array.json", "an array of events", "not_an_object", raw([event("in an array")])),
        _bad("string.json", "a JSON string", "not_an_object", b'"task_completion"'),
        _bad("number.json", "a number", "not_an_object", b"42"),
        _bad("null.json", "null", "not_an_object", b"null"),
        _bad("true.json", "true", "not_an_object", b"true"),
        _bad("empty-object.json", "{}", "missing_field", b"{}"),
        _bad("no-title.json", "title missing", "missing_field", raw({"type": "task_completion"})),
        _bad(
            "null-title.json", "title null", "missing_field", raw({"type": "task_completion", "title": None})
        ),
        _bad("type-number.json", "type is a number", "wrong_type", raw({"type": 7, "title": "t"})),
        _bad(
            "type-shouting.json",
            "type not snake_case",
            "wrong_type",
            raw(event("t", type_="Task Completed!")),
        ),
        _bad("type-long.json", "type of 1,000 letters", "wrong_type", raw(event("t", type_="a" * 1000))),
        _bad(
            "title-object.json",
            "title is an object",
            "wrong_type",
            raw({"type": "task_completion", "title": {"a": 1}}),
        ),
        _bad(
            "title-list.json",
            "title is a list",
            "wrong_type",
            raw({"type": "task_completion", "title": ["a"]}),
        ),
        _bad("data-string.json", "data is a string", "wrong_type", raw(event("t", data="completed"))),
        _bad("data-list.json", "data is a list", "wrong_type", raw(event("t", data=[1, 2]))),
        _bad(
            "description-number.json",
            "description is a number",
            "wrong_type",
            raw(event("t", description=3.5)),
        ),
        _bad(
            "timestamp-number.json",
            "timestamp is a number",
            "wrong_type",
            raw(event("t", timestamp=1700000000)),
        ),
        _bad(
            "timestamp-garbage.json",
            "timestamp not a date",
            "bad_timestamp",
            raw(event("t", timestamp="yesterday-ish")),
        ),
        _bad("retry-negative.json", "retry_count -1", "wrong_type", raw(event("t", retry_count=-1))),
        _bad("retry-string.json", "retry_count a string", "wrong_type", raw(event("t", retry_count="3"))),
        _bad("task-id-object.json", "task_id an object", "wrong_type", raw(event("t", task_id={"id": 1}))),
        _bad(
            "exit-code-word.json",
            "data.exit_code a word",
            "bad_data",
            raw(event("t", data={"exit_code": "boom"})),
        ),
        _bad(
            "severity-made-up.json",
            "data.severity not a level",
            "bad_data",
            raw(event("t", data={"severity": "apocalyptic"})),
        ),
        _bad("title-empty.json", "title empty", "empty", raw(event(""))),
        _bad("title-blank.json", "title only spaces", "empty", raw(event("   \t  "))),
        _bad("title-huge.json", "title of 10,000 characters", "too_long", raw(event("t" * 10_000))),
        # Numbers JSON does not have
        _bad("nan.json", "NaN", "invalid_json", b'{"type": "a", "title": "t", "data": {"x": NaN}}'),
        _bad(
            "infinity.json",
            "Infinity",
            "invalid_json",
            b'{"type": "a", "title": "t", "data": {"x": Infinity}}',
        ),
        _bad(
            "minus-infinity.json",
            "-Infinity",
            "invalid_json",
            b'{"type": "a", "title": "t", "data": {"x": -Infinity}}',
        ),
        _bad(
            "overflow-float.json",
            "1e999",
            "invalid_json",
            b'{"type": "a", "title": "t", "data": {"x": 1e999}}',
        ),
        _bad(
            "giant-int.json",
            "a 5,000-digit integer",
            "invalid_json",
            b'{"type": "a", "title": "t", "data": {"x": ' + b"9" * 5000 + b"}}",
        ),
        # Encodings
        _bad("latin1.json", "Latin-1 bytes", "invalid_utf8", b'{"type": "a", "title": "caf\xe9"}'),
        _bad(
            "utf16.json", "UTF-16 with its BOM", "invalid_utf8", json.dumps(event("utf16")).encode("utf-16")
        ),
        _bad("overlong.json", "overlong UTF-8 for /", "invalid_utf8", b'{"type": "a", "title": "\xc0\xaf"}'),
        _bad(
            "cesu-surrogate.json",
            "a surrogate encoded as UTF-8",
            "invalid_utf8",
            b'{"type": "a", "title": "\xed\xa0\x80"}',
        ),
        _bad(
            "escaped-nul.json",
            "\\u0000 in the title",
            "bad_text",
            b'{"type": "a", "title": "nul\\u0000here"}',
        ),
        _bad(
            "lone-surrogate.json",
            "an unpaired \\ud800",
            "bad_text",
            b'{"type": "a", "title": "half \\ud800"}',
        ),
        _bad("bom-only.json", "only a UTF-8 BOM", "empty", b"\xef\xbb\xbf"),
        # Sizes and nesting
        _bad(
            "over-limit.json",
            "2 MB of real description",
            "too_large",
            raw(event("t", description="d" * (2 * MB))),
        ),
        _bad("nesting-bomb.json", "100,000 nested arrays", "too_deep", b"[" * 100_000 + b"]" * 100_000),
        _bad("deep-objects.json", "data nested 40 objects deep", "too_deep", raw(event("t", data=_nest(40)))),
        Hostile(
            "huge-100mb.json", "a 100 MB sparse file", "quarantined", code="too_large", make=_sparse(100 * MB)
        ),
        # Empty and blank
        Hostile("zero-bytes.json", "zero bytes", "quarantined", code="empty", content=b""),
        _bad("whitespace.json", "only whitespace", "empty", b" \n\t\r\n  "),
        # Odd but acceptable: delivered
        _good(
            "bom.json",
            "UTF-8 BOM before the object",
            "hostile with a BOM",
            b"\xef\xbb\xbf" + raw(event("hostile with a BOM")),
        ),
        _good(
            "duplicate-keys.json",
            "title given twice (the last wins)",
            "hostile duplicate key",
            b'{"type": "task_completion", "title": "ignored", "title": "hostile duplicate key"}',
        ),
        _good(
            "brackets-in-strings.json",
            "10,000 brackets inside a string are not nesting",
            "hostile brackets in text",
            raw(event("hostile brackets in text", description="[{" * 10_000)),
        ),
        _good(
            "huge-array.json",
            "an array of 200,000 numbers in data",
            "hostile huge array",
            raw(event("hostile huge array", data={"samples": [0] * 200_000})),
        ),
        _good(
            "markup.json",
            "markup, a zero-width space and a bidi override in the title",
            "hostile <b>markup</b>",
            raw(event("hostile <b>markup</b> \u200b\u202eevil")),
        ),
        _good(
            "unknown-type.json",
            "an unknown event type",
            "hostile unknown type",
            raw(event("hostile unknown type", type_="definitely_not_a_type")),
        ),
        _good("name\nwith newline.json", "a newline in the file name", "hostile newline name"),
        _good("événement-😀.json", "a non-ASCII file name", "hostile unicode name"),
        _good("a..%2f..%2fetc%2fpasswd.json", "path tricks spelled in the name", "hostile dotdot name"),
        Hostile(
            "..%2f..%2fetc%2fpasswd.json",
            "a name starting with '..'",
            "ignored",
            content=raw(event("hidden")),
            why="a name starting with '.' is a file still being written, by convention: left to its writer",
        ),
        _good("$(rm -rf ~) `id`;.json", "shell metacharacters in the name", "hostile shell name"),
        _good(LONG_NAME, "a 255-byte file name", "hostile long name"),
        # Names that are bad files too: the note must still be written
        Hostile(
            "long-bad-" + "b" * (NAME_MAX - 14) + ".json",
            "a 255-byte name on a bad file",
            "quarantined",
            code="invalid_json",
            content=b"{nope",
        ),
        Hostile(
            BAD_UTF8_NAME,
            "a file name that is not UTF-8",
            "quarantined",
            code="invalid_json",
            make=_bad_bytes_name,
        ),
        # Links, pipes, sockets, folders
        Hostile(
            "escape.json",
            "symlink to a file outside the folder",
            "quarantined",
            code="unsafe_path",
            make=_symlink("escape.json", _outside_file),
        ),
        Hostile(
            "dev-zero.json",
            "symlink to /dev/zero",
            "quarantined",
            code="unsafe_path",
            make=_symlink("dev-zero.json", lambda e, o: "/dev/zero"),
        ),
        Hostile(
            "dotdot.json",
            "symlink through ../..",
            "quarantined",
            code="unsafe_path",
            make=_symlink("dotdot.json", lambda e, o: "../../../../../../../../etc/hostname"),
        ),
        Hostile(
            "inside-link.json",
            "symlink to an event file inside the folder",
            "delivered",
            title="hostile symlink inside the folder",
            make=_symlink("inside-link.json", _inside_target),
        ),
        Hostile(
            "dangling.json",
            "symlink to nothing",
            "quarantined",
            code="unreadable",
            make=_symlink("dangling.json", lambda e, o: e / "nothing-here.json"),
        ),
        Hostile(
            "loop-a.json",
            "two symlinks pointing at each other",
            "quarantined",
            code="unsafe_path|unreadable",
            make=_loop,
        ),
        Hostile(
            "dir-link.json",
            "symlink to a folder inside the events folder",
            "quarantined",
            code="not_a_file",
            make=_symlink("dir-link.json", _inside_folder),
        ),
        Hostile(
            "outside-dir-link.json",
            "symlink to a folder outside",
            "quarantined",
            code="unsafe_path",
            make=_symlink("outside-dir-link.json", lambda e, o: o),
        ),
        Hostile(
            "fifo.json",
            "a named pipe (opening it must not hang)",
            "quarantined",
            code="not_a_file",
            make=_fifo("fifo.json"),
        ),
        Hostile("socket.json", "a unix socket", "quarantined", code="unreadable", make=_socket),
        Hostile(
            "folder.json",
            "a directory named like an event",
            "ignored",
            make=_directory,
            why="a folder is nobody's event and may be someone's data: it is left where it is, unread",
        ),
    ]
    # loop-b.json is made with loop-a.json; once loop-a.json is quarantined, loop-b.json points at nothing.
    corpus.append(
        Hostile(
            "loop-b.json",
            "the other end of the loop",
            "quarantined",
            code="unsafe_path|unreadable",
            make=lambda e, o: None,
        )
    )
    if running_as_root:
        corpus.append(_good_made("mode-000.json", "mode 000 (root reads it anyway)", "hostile mode 000 file"))
    else:
        corpus.append(
            Hostile(
                "mode-000.json", "mode 000, unreadable", "quarantined", code="unreadable", make=_unreadable
            )
        )
    return corpus


def _good_made(name: str, what: str, title: str) -> Hostile:
    return Hostile(name, what, "delivered", title=title, make=_unreadable)


def _nest(levels: int) -> dict:
    data: dict = {}
    for _ in range(levels):
        data = {"x": data}
    return data


# --- entries that need time ---------------------------------------------------------------------------------------


def flicker(events: Path, count: int = 200) -> None:
    """Files that appear and vanish at once, half of them half-written: the watcher may see a name that is gone,
    or a file that goes while it is read. Nothing to quarantine (a half-written file gets a grace period, and
    these are gone long before it ends); a whole one caught in time may be delivered, as it did exist."""
    for i in range(count):
        path = events / f"flicker-{i}.json"
        path.write_bytes(b'{"type": "task_completion", "ti' if i % 2 else raw(event(f"flicker {i}")))
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def grow(events: Path, name: str, title: str, *, chunks: int = 4, pause: float = 0.02) -> None:
    """An agent that writes in place (no rename), a piece at a time: the half-written file must be waited for,
    not quarantined, and arrive whole."""
    body = raw(event(title, description="growing " * 2000))
    step = len(body) // chunks + 1
    with open(events / name, "wb") as handle:
        for start in range(0, len(body), step):
            handle.write(body[start : start + step])
            handle.flush()
            time.sleep(pause)


def grow_past_limit(events: Path, name: str, *, limit: int) -> None:
    """A file that keeps growing past the size limit while it is read: refused as too large."""
    with open(events / name, "wb") as handle:
        handle.write(b'{"type": "task_completion", "title": "')
        written = 0
        while written <= limit + MB:
            handle.write(b"g" * (256 * 1024))
            written += 256 * 1024
            handle.flush()
            time.sleep(0.005)


def in_thread(target: Callable[..., None], *args, **kwargs) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread
