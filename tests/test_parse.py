"""Parsing events from bytes, files and mappings: what is accepted, what is refused and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.events.catalog import CATALOG
from bridge.events.data import DATA_FIELDS
from bridge.events.parse import CODES, Limits, RejectedEvent, parse_bytes, parse_file, parse_mapping
from bridge.events.priority import Priority
from bridge.events.schema import Event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"
ROOT = Path(__file__).resolve().parent.parent


def event_bytes(**fields) -> bytes:
    document = {"type": "task_completion", "title": "Tests green", **fields}
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def rejection(raw: bytes, **kwargs) -> RejectedEvent:
    with pytest.raises(RejectedEvent) as caught:
        parse_bytes(raw, **kwargs)
    assert caught.value.code in CODES
    assert str(caught.value) == caught.value.reason
    return caught.value


# --- refusals -----------------------------------------------------------------------------------------------


def test_invalid_json_is_rejected_with_the_decoder_position():
    refused = rejection(b'{"type": "task_completion", "title": ')
    assert refused.code == "invalid_json"
    assert "not valid JSON" in refused.reason and "char" in refused.reason


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_numbers_json_cannot_hold_are_rejected_as_invalid_json(literal):
    refused = rejection(b'{"type": "x", "title": "t", "data": {"v": ' + literal + b"}}")
    assert refused.code == "invalid_json"
    assert "finite" in refused.reason


def test_invalid_utf8_is_rejected_with_the_byte_offset():
    raw = b'{"type": "x", "title": "caf\xe9"}'
    refused = rejection(raw)
    assert refused.code == "invalid_utf8"
    assert f"byte {raw.index(0xE9)}" in refused.reason


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"[1, 2]", "an array"),
        (b'"hello"', "a string"),
        (b"42", "an integer"),
        (b"4.2", "a number"),
        (b"null", "null"),
    ],
)
def test_a_document_that_is_not_an_object_is_rejected_naming_what_it_is(raw, kind):
    refused = rejection(raw)
    assert refused.code == "not_an_object"
    assert refused.reason == f"the event must be a JSON object, not {kind}"


@pytest.mark.parametrize("raw", [b"", b"  \n\t", b"\xef\xbb\xbf"])
def test_an_empty_document_is_rejected_as_empty(raw):
    assert rejection(raw).code == "empty"


@pytest.mark.parametrize("field", ["type", "title"])
def test_a_missing_required_field_is_rejected_naming_it(field):
    refused = rejection(event_bytes(**{field: ...}))
    assert (refused.code, refused.reason) == ("missing_field", f"required field {field!r} is missing")
    assert rejection(event_bytes(**{field: None})).code == "missing_field"


@pytest.mark.parametrize(("field", "value"), [("title", ""), ("title", "  \n "), ("type", "")])
def test_an_empty_required_field_is_rejected_as_empty(field, value):
    refused = rejection(event_bytes(**{field: value}))
    assert (refused.code, refused.reason) == ("empty", f"field {field!r} is empty")


@pytest.mark.parametrize(
    ("field", "value", "expected", "got"),
    [
        ("type", 5, "a string", "an integer"),
        ("title", ["a"], "a string", "an array"),
        ("description", 5, "a string", "an integer"),
        ("source", {"a": 1}, "a string", "an object"),
        ("timestamp", 1764400000, "an RFC 3339 string", "an integer"),
        ("task_id", 1.5, "a string or an integer", "a number"),
        ("task_id", True, "a string or an integer", "a boolean"),
        ("event_id", ["x"], "a string or an integer", "an array"),
        ("data", ["x"], "an object", "an array"),
        ("data", "x", "an object", "a string"),
        ("correlation_id", 5, "a string", "an integer"),
        ("parent_event_id", {}, "a string", "an object"),
        ("retry_count", "1", "a non-negative integer", "a string"),
        ("retry_count", -1, "a non-negative integer", "an integer"),
        ("retry_count", True, "a non-negative integer", "a boolean"),
        ("processing_status", 1, "a string", "an integer"),
        ("schema_version", [1], "a string or a number", "an array"),
        ("created_at", 1, "a string", "an integer"),
        ("processed_at", False, "a string", "a boolean"),
    ],
)
def test_a_field_of_the_wrong_type_is_rejected_naming_field_and_type(field, value, expected, got):
    refused = rejection(event_bytes(**{field: value}))
    assert refused.code == "wrong_type"
    assert refused.reason == f"field {field!r} must be {expected}, got {got}"


@pytest.mark.parametrize("name", ["Task_Completion", "task-completion", "task completion", "x" * 65, "tâche"])
def test_a_type_that_is_not_snake_case_is_rejected_as_wrong_type(name):
    refused = rejection(event_bytes(type=name))
    assert refused.code == "wrong_type"
    assert "lowercase letters, digits or underscores" in refused.reason


def test_a_title_over_the_limit_is_rejected_with_its_length_and_the_limit():
    assert parse_bytes(event_bytes(title="x" * 200)).title == "x" * 200
    refused = rejection(event_bytes(title="x" * 201))
    assert (refused.code, refused.reason) == (
        "too_long",
        "field 'title' is 201 characters long; the limit is 200",
    )


def test_a_description_over_the_limit_is_rejected_as_too_long():
    assert parse_bytes(event_bytes(description="d" * 100_000)).description == "d" * 100_000
    refused = rejection(event_bytes(description="d" * 100_001))
    assert refused.code == "too_long" and "100001" in refused.reason and "100000" in refused.reason


@pytest.mark.parametrize(("field", "size"), [("source", 201), ("task_id", 201), ("event_id", 129)])
def test_identifiers_longer_than_their_database_column_are_rejected(field, size):
    assert rejection(event_bytes(**{field: "i" * size})).code == "too_long"


def test_limits_are_configurable():
    limits = Limits(max_title=10, max_description=5)
    assert rejection(event_bytes(title="eleven char"), limits=limits).code == "too_long"
    assert rejection(event_bytes(description="sixsix"), limits=limits).code == "too_long"


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-29T25:00:00", "   "])
def test_a_timestamp_that_is_not_rfc3339_is_rejected_quoting_it(value):
    refused = rejection(event_bytes(timestamp=value))
    assert refused.code == "bad_timestamp"
    assert repr(value) in refused.reason


def test_bytes_over_the_size_limit_are_rejected_with_size_and_limit():
    refused = rejection(b" " * 1_048_577)
    assert (refused.code, refused.reason) == ("too_large", "the event is 1048577 bytes; the limit is 1048576")


def test_a_file_over_the_size_limit_is_rejected_without_being_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(2 * 1024 * 1024)

    def no_read(fd, n):
        raise AssertionError("an oversized file was read")

    monkeypatch.setattr(os, "read", no_read)
    with pytest.raises(RejectedEvent) as caught:
        parse_file(path)
    assert caught.value.code == "too_large"
    assert caught.value.reason == "the event is 2097152 bytes; the limit is 1048576"


def test_10000_nested_arrays_are_rejected_as_too_deep():
    raw = b'{"type": "x", "title": "t", "data": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"
    refused = rejection(raw)
    assert (refused.code, refused.reason) == ("too_deep", "nested more than 32 levels deep")


def test_a_megabyte_of_open_brackets_is_rejected_as_too_deep():
    assert rejection(b"[" * 1_048_576).code == "too_deep"
    assert rejection(b"{" * 1_048_576).code == "too_deep"


def test_nesting_is_allowed_up_to_the_limit_and_brackets_inside_strings_do_not_count():
    def nested(levels):  # the event object itself is level 1, data level 2
        return (
            b'{"type": "x", "title": "[[[[\\"{{{{", "data": {"a": '
            + b"[" * (levels - 2)
            + b"]" * (levels - 2)
            + b"}}"
        )

    assert parse_bytes(nested(32)).title == '[[[["{{{{'
    assert rejection(nested(33)).code == "too_deep"
    assert parse_bytes(event_bytes(title="[" * 150, description="{" * 500)).title == "[" * 150


@pytest.mark.parametrize("escape", [b"\\u0000", b"\\ud800", b"\\uDFFF"])
def test_text_the_database_cannot_store_is_rejected_naming_where(escape):
    refused = rejection(b'{"type": "x", "title": "t", "data": {"note": "a' + escape + b'b"}}')
    assert refused.code == "bad_text"
    assert refused.reason.startswith("data.note: ")


def test_an_escaped_backslash_before_u_is_plain_text():
    assert parse_bytes(b'{"type": "x", "title": "C:\\\\u0000dir"}').title == "C:\\u0000dir"
    assert parse_bytes(b'{"type": "x", "title": "\\ud83d\\ude80 launch"}').title == "🚀 launch"


def test_a_symlink_pointing_outside_the_events_folder_is_refused(tmp_path):
    root, outside = tmp_path / "events", tmp_path / "secrets.json"
    root.mkdir()
    outside.write_bytes(event_bytes())
    (root / "link.json").symlink_to(outside)
    with pytest.raises(RejectedEvent) as caught:
        parse_file(root / "link.json", root=root)
    assert caught.value.code == "unsafe_path"
    assert str(outside) in caught.value.reason


def test_a_symlink_inside_the_events_folder_is_followed(tmp_path):
    (tmp_path / "real.json").write_bytes(event_bytes(title="via link"))
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    assert parse_file(tmp_path / "link.json", root=tmp_path).title == "via link"


def test_a_file_that_vanished_is_rejected_as_vanished(tmp_path):
    with pytest.raises(RejectedEvent) as caught:
        parse_file(tmp_path / "gone.json")
    assert caught.value.code == "vanished"
    (tmp_path / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(RejectedEvent, match="disappeared"):
        parse_file(tmp_path / "dangling.json", root=tmp_path)


def test_a_directory_or_fifo_is_refused_without_blocking(tmp_path):
    (tmp_path / "dir.json").mkdir()
    os.mkfifo(tmp_path / "pipe.json")
    for name in ("dir.json", "pipe.json"):
        with pytest.raises(RejectedEvent) as caught:
            parse_file(tmp_path / name)
        assert caught.value.code == "not_a_file"


def test_an_empty_file_is_rejected_as_empty(tmp_path):
    (tmp_path / "empty.json").write_bytes(b"")
    with pytest.raises(RejectedEvent) as caught:
        parse_file(tmp_path / "empty.json")
    assert caught.value.code == "empty"


def test_a_large_file_under_the_limit_is_read_whole(tmp_path):
    blob = "é" * 400_000  # 800 kB in UTF-8: read in chunks
    document = {"type": "x", "title": "t", "data": {"blob": blob}}
    (tmp_path / "big.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    assert parse_file(tmp_path / "big.json").data["blob"] == blob


KIB = 1024
LIMIT = Limits().max_file_bytes


def padded_event(size: int) -> bytes:
    """A valid event of exactly `size` bytes (JSON allows trailing whitespace)."""
    raw = event_bytes()
    return raw + b" " * (size - len(raw))


class ReadLog:
    """os.read on the real file, recording (asked, got) per call; `grow` bytes are appended to the file just
    before the first read, as a writer still appending after parse_file's fstat would."""

    def __init__(self, path: Path, grow: int = 0) -> None:
        self.path, self.grow, self.calls, self.real = path, grow, [], os.read

    def __call__(self, fd: int, n: int) -> bytes:
        if self.grow and not self.calls:
            with self.path.open("ab") as writer:
                writer.write(b" " * self.grow)
        got = self.real(fd, n)
        self.calls.append((n, len(got)))
        return got

    @property
    def asked(self) -> list[int]:
        return [n for n, _ in self.calls]

    @property
    def got(self) -> list[int]:
        return [n for _, n in self.calls]


def read_logged(path: Path, monkeypatch, grow: int = 0) -> tuple[ReadLog, Event | RejectedEvent]:
    log = ReadLog(path, grow)
    with monkeypatch.context() as patched:
        patched.setattr(os, "read", log)
        try:
            return log, parse_file(path)
        except RejectedEvent as refused:
            return log, refused


def test_a_small_file_is_read_in_one_call(tmp_path, monkeypatch):
    path = tmp_path / "small.json"
    path.write_bytes(padded_event(KIB))
    log, event = read_logged(path, monkeypatch)
    assert log.calls == [(KIB + 1, KIB)]  # one byte more than fstat said: the short read is end of file
    assert event.title == "Tests green"


@pytest.mark.parametrize("size", [256 * KIB + 1, 800_000, LIMIT])
def test_a_large_file_is_read_in_chunks_of_64_to_256_kib_and_never_past_the_limit(
    tmp_path, monkeypatch, size
):
    path = tmp_path / "large.json"
    path.write_bytes(padded_event(size))
    log, event = read_logged(path, monkeypatch)
    assert event.title == "Tests green"
    assert sum(log.got) == size
    assert all(64 * KIB <= n <= 256 * KIB for n in log.asked[:-1])
    assert log.asked[-1] <= 256 * KIB
    assert sum(log.asked) <= LIMIT + 1
    # Only the last read is short: it is the end of the file, not followed by an empty read to confirm it.
    assert [got < asked for asked, got in log.calls] == [False] * (len(log.calls) - 1) + [True]


@pytest.mark.parametrize("size", [KIB, 800_000, LIMIT])
def test_a_file_growing_past_the_limit_while_read_is_refused_after_limit_plus_one_bytes(
    tmp_path, monkeypatch, size
):
    path = tmp_path / "growing.json"
    path.write_bytes(padded_event(size))
    log, refused = read_logged(path, monkeypatch, grow=3 * LIMIT)
    assert isinstance(refused, RejectedEvent)
    assert (refused.code, refused.reason) == (
        "too_large",
        f"the event grew to at least {LIMIT + 1} bytes; the limit is {LIMIT}",
    )
    assert sum(log.got) == sum(log.asked) == LIMIT + 1
    assert max(log.asked) <= 256 * KIB


def test_a_file_growing_under_the_limit_while_read_is_read_to_its_end(tmp_path, monkeypatch):
    path = tmp_path / "growing.json"
    path.write_bytes(padded_event(KIB))
    log, event = read_logged(path, monkeypatch, grow=300 * KIB)
    assert event.title == "Tests green"
    assert sum(log.got) == KIB + 300 * KIB
    assert log.asked[0] == KIB + 1 and max(log.asked) <= 256 * KIB


def test_a_file_at_the_limit_is_parsed_without_its_bytes_outliving_the_decode(tmp_path):
    head = json.dumps({"type": "x", "title": "t", "data": {"blob": ""}}).encode()
    path = tmp_path / "full.json"
    path.write_bytes(head[:-3] + b"a" * (LIMIT - len(head)) + head[-3:])
    tracemalloc.start()
    try:
        event = parse_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(event.data["blob"]) == LIMIT - len(head)
    # Bytes and text while decoding, then text and the parsed value: never bytes, text and value together.
    assert peak < 2.5 * LIMIT


# --- data fields --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"exit_code": "1"}, "data.exit_code: expected an integer, got str"),
        ({"exit_code": 1.0}, "data.exit_code: expected an integer, got float"),
        ({"tests_passed": True}, "data.tests_passed: expected an integer, got bool"),
        ({"coverage_percentage": "high"}, "data.coverage_percentage: expected a number, got str"),
        ({"success": "yes"}, "data.success: expected true or false, got str"),
        ({"files_affected": "a.py"}, "data.files_affected: expected a list, got str"),
        ({"tags": ["ok", 1]}, "data.tags[1]: expected a string, got int"),
        ({"metadata": []}, "data.metadata: expected an object, got list"),
        (
            {"severity": "extreme"},
            "data.severity: expected 'low', 'medium', 'high' or 'critical', got 'extreme'",
        ),
        ({"priority": "HIGH"}, "data.priority: expected 'low', 'normal', 'high' or 'urgent', got 'HIGH'"),
        (
            {"severity": ["high"]},
            "data.severity: expected 'low', 'medium', 'high' or 'critical', got ['high']",
        ),
        ({"options": []}, "data.options: expected 1 to 10 items, got 0"),
        ({"options": [str(i) for i in range(11)]}, "data.options: expected 1 to 10 items, got 11"),
        ({"user_id": True}, "data.user_id: expected a string or an integer, got bool"),
        ({"actions": [{"text": "Go", "action": "go", "style": "huge"}]}, "data.actions[0].style: expected"),
        ({"actions": [{"text": "Go"}]}, "data.actions[0].action: required"),
    ],
)
def test_a_data_field_of_the_wrong_type_is_rejected_naming_the_field(data, message):
    refused = rejection(event_bytes(data=data))
    assert refused.code == "bad_data"
    assert refused.reason.startswith(message)


def test_several_bad_data_fields_are_all_named():
    reason = rejection(event_bytes(data={"exit_code": "1", "url": 5})).reason
    assert "data.exit_code" in reason and "data.url" in reason


def test_integers_are_accepted_where_numbers_are_expected_and_data_is_kept_as_given():
    data = {
        "coverage_percentage": 80,
        "duration_ms": 1.5,
        "zeta": {"nested": [1, None]},
        "status": None,
        "alpha": 1,
    }
    event = parse_bytes(event_bytes(data=data))
    assert event.data == data
    assert list(event.data) == list(data)
    assert event.typed_data.coverage_percentage == 80
    assert event.typed_data.model_extra == {"zeta": {"nested": [1, None]}, "alpha": 1}


def test_valid_buttons_and_options_are_accepted():
    data = {
        "options": ["Approve", "Deny"],
        "actions": [{"text": "OK", "action": "ack", "data": "x", "style": "danger"}],
    }
    assert parse_bytes(event_bytes(type="approval_request", data=data)).data == data


# --- what is accepted ---------------------------------------------------------------------------------------


def test_a_minimal_event_gets_every_default():
    before = datetime.now(UTC)
    event = parse_bytes(b'{"type": "build_started", "title": "Build"}')
    assert (event.description, event.source, event.task_id, event.data, event.origin) == (
        "",
        "claude-code",
        "",
        {},
        "file",
    )
    assert before <= event.timestamp <= datetime.now(UTC) and event.timestamp.tzinfo is UTC
    assert (event.retry_count, event.correlation_id, event.parent_event_id, event.schema_version) == (
        0,
        None,
        None,
        None,
    )
    assert len(event.event_id) == 32 and int(event.event_id, 16) >= 0


def test_empty_or_null_optional_fields_fall_back_to_their_defaults():
    event = parse_bytes(
        event_bytes(source="  ", description=None, data=None, task_id=None, timestamp="", retry_count=None)
    )
    assert (event.source, event.description, event.data, event.task_id, event.retry_count) == (
        "claude-code",
        "",
        {},
        "",
        0,
    )


def test_an_unknown_type_is_kept_and_shown_with_a_question_mark():
    event = parse_bytes(event_bytes(type="deployment_rolled_back"))
    assert (event.type, event.category, event.emoji) == ("deployment_rolled_back", "unknown", "❓")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-29T14:03:11Z", datetime(2026, 11, 29, 14, 3, 11, tzinfo=UTC)),
        ("2026-11-29t14:03:11z", datetime(2026, 11, 29, 14, 3, 11, tzinfo=UTC)),
        ("2026-11-29T16:03:11+02:00", datetime(2026, 11, 29, 14, 3, 11, tzinfo=UTC)),
        ("2026-11-29T14:03:11.123456789Z", datetime(2026, 11, 29, 14, 3, 11, 123456, tzinfo=UTC)),
        ("2026-11-29T14:03:11", datetime(2026, 11, 29, 14, 3, 11, tzinfo=UTC)),
        ("2026-11-29 14:03:11.5", datetime(2026, 11, 29, 14, 3, 11, 500000, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_are_stored_in_utc_and_naive_ones_are_taken_as_utc(value, expected):
    timestamp = parse_bytes(event_bytes(timestamp=value)).timestamp
    assert timestamp == expected and timestamp.tzinfo is UTC


def test_numeric_ids_are_accepted_as_text():
    event = parse_bytes(event_bytes(task_id=42, event_id=7, schema_version=1.0))
    assert (event.task_id, event.event_id, event.schema_version) == ("42", "7", "1.0")


@pytest.mark.parametrize(
    "title", ["✅ Done: deploy 🚀 (step 2/3)", "Fix: handle `None` in *parse*_args [#12]", "日本語のタイトル"]
)
def test_titles_with_emoji_colons_and_markup_characters_are_kept(title):
    assert parse_bytes(event_bytes(title=title)).title == title


def test_surrounding_whitespace_of_the_title_is_dropped():
    assert parse_bytes(event_bytes(title="  Build green \n")).title == "Build green"


def test_a_utf8_byte_order_mark_is_tolerated():
    assert parse_bytes(b"\xef\xbb\xbf" + event_bytes(title="BOM")).title == "BOM"


def test_unknown_top_level_fields_are_ignored():
    assert parse_bytes(event_bytes(severity="high", extra={"a": 1})).data == {}


def test_all_original_optional_fields_are_carried():
    fields = {
        "correlation_id": "corr-1",
        "parent_event_id": "parent-1",
        "retry_count": 2,
        "processing_status": "pending",
        "schema_version": "1.0",
        "created_at": "2026-11-29T14:00:00Z",
        "processed_at": "2026-11-29T14:00:01Z",
    }
    event = parse_bytes(event_bytes(**fields))
    assert {name: getattr(event, name) for name in fields} == fields


# --- event ids ----------------------------------------------------------------------------------------------


def test_the_same_content_gets_the_same_event_id(tmp_path):
    raw = event_bytes(task_id="t-1", data={"status": "completed"})
    (tmp_path / "a.json").write_bytes(raw)
    (tmp_path / "b.json").write_bytes(raw)
    assert (
        parse_file(tmp_path / "a.json").event_id
        == parse_file(tmp_path / "b.json").event_id
        == parse_bytes(raw).event_id
    )


def test_different_content_gets_a_different_event_id():
    assert (
        parse_bytes(event_bytes(task_id="t-1")).event_id != parse_bytes(event_bytes(task_id="t-2")).event_id
    )


def test_an_explicit_event_id_is_kept():
    assert parse_bytes(event_bytes(event_id=" evt-123 ")).event_id == "evt-123"


def test_a_mapping_gets_an_id_from_its_canonical_json_or_the_given_digest():
    first = parse_mapping({"type": "x", "title": "t", "data": {"a": 1, "b": 2}}, origin="mcp")
    reordered = parse_mapping({"data": {"b": 2, "a": 1}, "title": "t", "type": "x"}, origin="mcp")
    assert first.event_id == reordered.event_id
    assert (
        parse_mapping({"type": "x", "title": "t"}, origin="hook", raw_digest="ab" * 32).event_id == "ab" * 16
    )


# --- mappings -----------------------------------------------------------------------------------------------


def test_a_mapping_is_copied_so_later_changes_do_not_reach_the_event():
    original = {"type": "x", "title": "t", "data": {"tags": ("a", "b"), "metadata": {"k": 1}}}
    event = parse_mapping(original, origin="mcp")
    original["data"]["metadata"]["k"] = 2
    assert event.data == {"tags": ["a", "b"], "metadata": {"k": 1}}
    assert event.origin == "mcp"


def test_a_mapping_uses_now_for_a_missing_timestamp():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert parse_mapping({"type": "x", "title": "t"}, origin="shell", now=now).timestamp == now.astimezone(
        UTC
    )


@pytest.mark.parametrize(
    ("value", "code", "where"),
    [
        ({1, 2}, "bad_data", "data.v: a set is not a JSON value"),
        (datetime(2026, 1, 1), "bad_data", "data.v: a datetime is not a JSON value"),
        (float("nan"), "bad_data", "data.v: nan is not a JSON number"),
        ({3: "x"}, "bad_data", "data.v: has a non-string key 3"),
        (["ok", "a\x00b"], "bad_text", "data.v[1]: holds a NUL"),
    ],
)
def test_a_mapping_with_values_json_cannot_hold_is_rejected_naming_where(value, code, where):
    with pytest.raises(RejectedEvent) as caught:
        parse_mapping({"type": "x", "title": "t", "data": {"v": value}}, origin="mcp")
    assert caught.value.code == code
    assert caught.value.reason.startswith(where)


def test_a_cyclic_mapping_is_rejected_as_too_deep():
    data: dict = {}
    data["self"] = data
    with pytest.raises(RejectedEvent) as caught:
        parse_mapping({"type": "x", "title": "t", "data": data}, origin="mcp")
    assert caught.value.code == "too_deep"


def test_a_mapping_over_the_size_limit_is_rejected_as_too_large():
    with pytest.raises(RejectedEvent) as caught:
        parse_mapping({"type": "x", "title": "t", "data": {"blob": "x" * 2_000_000}}, origin="mcp")
    assert caught.value.code == "too_large"


@pytest.mark.parametrize("value", [None, ["type", "x"], "text"])
def test_something_other_than_a_mapping_is_rejected_as_not_an_object(value):
    with pytest.raises(RejectedEvent) as caught:
        parse_mapping(value, origin="mcp")
    assert caught.value.code == "not_an_object"


def test_an_unknown_origin_is_a_programming_error():
    with pytest.raises(ValueError, match="origin must be one of file, mcp, hook, shell"):
        parse_mapping({"type": "x", "title": "t"}, origin="email")


# --- the typed Event ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda path: path.stem)
def test_every_fixture_survives_the_queue_round_trip(path):
    event = parse_file(path)
    payload = event.to_json()
    assert Event.from_json(payload) == event
    assert payload == json.dumps(json.loads(payload), separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(payload)["timestamp"].endswith("+00:00")


def test_an_event_with_every_optional_field_survives_the_round_trip():
    event = parse_bytes(
        event_bytes(
            correlation_id="c", parent_event_id="p", retry_count=3, schema_version="2", created_at="x"
        )
    )
    assert Event.from_json(event.to_json()) == event
    assert Event.from_json(event.to_json().decode()) == event


@pytest.mark.parametrize("payload", [b"not json", b"[]", b'{"event_id": "x"}', b'{"timestamp": 5}'])
def test_a_payload_that_is_not_an_event_raises_value_error(payload):
    with pytest.raises(ValueError, match="not an Event payload"):
        Event.from_json(payload)


@pytest.mark.parametrize(
    ("type_", "data", "priority"),
    [
        ("task_completion", {}, Priority.NORMAL),
        ("approval_request", {}, Priority.URGENT),
        ("info_notification", {"severity": "critical"}, Priority.URGENT),
        ("performance_alert", {"severity": "high"}, Priority.HIGH),
        ("performance_alert", {"severity": "medium"}, Priority.NORMAL),
        ("build_failed", {}, Priority.HIGH),
        ("task_failed", {}, Priority.HIGH),
        ("test_failed", {}, Priority.HIGH),
        ("error_occurred", {}, Priority.HIGH),
        ("security_alert", {}, Priority.HIGH),
        ("build_failed", {"priority": "low"}, Priority.LOW),
        ("approval_request", {"priority": "normal"}, Priority.NORMAL),
        ("task_completion", {"priority": "urgent"}, Priority.URGENT),
        ("custom_thing_failed", {}, Priority.HIGH),
    ],
)
def test_priority_comes_from_data_priority_then_type_and_severity(type_, data, priority):
    assert parse_bytes(event_bytes(type=type_, data=data)).priority is priority


def test_only_approval_requests_are_approvals():
    assert parse_bytes(event_bytes(type="approval_request")).is_approval
    assert not parse_bytes(event_bytes(type="user_response")).is_approval


def test_the_event_carries_its_catalog_info_and_status_emoji():
    event = parse_bytes(event_bytes(data={"status": "partial"}))
    assert event.info is CATALOG["task_completion"]
    assert (event.category, event.emoji) == ("task_management", "⚠️")


def test_the_events_package_imports_neither_django_nor_pydantic():
    code = "import sys, bridge.events.parse; print(sorted({'django', 'pydantic'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- fuzzing ------------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(st.characters(exclude_categories=()), max_size=30)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=25,
)


def mostly(valid, other=JSON_VALUES):
    """Valid values three times out of four, so the fuzzing also reaches the end of the parser."""
    return st.one_of(valid, valid, valid, other)


CLEAN_TEXT = st.text(max_size=30)
EVENTS = st.fixed_dictionaries(
    {
        "type": mostly(
            st.sampled_from([*CATALOG, "custom_x"]) | st.from_regex(r"[a-z0-9_]{1,64}", fullmatch=True)
        ),
        "title": mostly(st.text(min_size=1, max_size=30), TEXT | JSON_VALUES),
    },
    optional={
        "description": mostly(CLEAN_TEXT, TEXT | JSON_VALUES),
        "timestamp": mostly(st.datetimes().map(datetime.isoformat), TEXT | JSON_VALUES),
        "task_id": mostly(CLEAN_TEXT | st.integers()),
        "event_id": mostly(CLEAN_TEXT),
        "retry_count": mostly(st.integers(min_value=0)),
        "data": st.dictionaries(st.sampled_from(sorted(DATA_FIELDS)) | TEXT, JSON_VALUES, max_size=4),
    },
)


def accepted_or_refused(parse, value) -> None:
    try:
        event = parse(value)
    except RejectedEvent as refused:
        assert refused.code in CODES
        return
    assert Event.from_json(event.to_json()) == event
    assert event.typed_data is not None  # the quick data checks never accept what EventData refuses


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_either_parsed_or_rejected(raw):
    accepted_or_refused(parse_bytes, raw)


@FUZZ
@given(JSON_VALUES)
def test_arbitrary_json_values_are_either_parsed_or_rejected(value):
    accepted_or_refused(parse_bytes, json.dumps(value).encode())


@FUZZ
@given(EVENTS)
def test_event_shaped_documents_are_either_parsed_or_rejected(document):
    accepted_or_refused(parse_bytes, json.dumps(document).encode())
    accepted_or_refused(lambda value: parse_mapping(value, origin="mcp"), document)
