"""Formatting events for Telegram: every type, both styles, escaping, splitting, keyboards, digests, decisions.

Messages are sent over real HTTP to the Bot API emulator through python-telegram-bot: the emulator parses HTML
and MarkdownV2 exactly as Telegram does, so "accepted" here means Telegram would accept it too.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Bot, Message

from bridge.events.catalog import CATALOG
from bridge.events.parse import parse_file
from bridge.events.schema import Event
from bridge.telegram.emulator import EmulatorServer
from bridge.telegram.emulator.entities import parse_html
from bridge.telegram.escape import MAX_TEXT_UTF16, clean_text, escape_html, escape_markdown_v2, utf16_len
from bridge.telegram.figures import human_bytes, human_duration
from bridge.telegram.format import Rendered, render, render_decision, render_digest, render_expired
from bridge.telegram.keyboards import (
    CALLBACK_MAX_BYTES,
    Keyboard,
    callback_ref,
    keyboard_for,
    new_token,
    option_for,
    parse_callback_data,
    reply_markup,
)
from bridge.telegram.split import split_html
from tests.emulator_fixtures import TEST_TOKEN, emulator_server  # noqa: F401

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"
CHAT = 4242
WHEN = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
HEADER = re.compile(r"^\((\d+)/(\d+)\)\n")


class Telegram:
    """A python-telegram-bot Bot on the emulator, driven from synchronous tests (and hypothesis) on one loop."""

    def __init__(self, base_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.bot = Bot(TEST_TOKEN, base_url=base_url)
        self.run(self.bot.initialize())

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def send(
        self, text: str, *, parse_mode: str | None = "HTML", keyboard: Keyboard | None = None
    ) -> Message:
        return self.run(
            self.bot.send_message(CHAT, text, parse_mode=parse_mode, reply_markup=reply_markup(keyboard))
        )

    def send_rendered(self, rendered: Rendered) -> list[Message]:
        return [
            self.send(text, parse_mode=rendered.parse_mode, keyboard=keyboard)
            for text, keyboard in rendered.messages()
        ]

    def close(self) -> None:
        self.run(self.bot.shutdown())
        self.loop.close()


@pytest.fixture(scope="module")
def telegram(emulator_server: EmulatorServer) -> Iterator[Telegram]:  # noqa: F811
    """One client for the module: the property tests send hundreds of messages (no flood limits here)."""
    emulator_server.state.reset()
    client = Telegram(emulator_server.base_url)
    yield client
    client.close()


def make_event(type: str = "task_completion", title: str = "Title", **fields: Any) -> Event:
    fields.setdefault("event_id", "ev-1")
    fields.setdefault("timestamp", WHEN)
    fields.setdefault("task_id", "task-1")
    return Event(type=type, title=title, **fields)


def fixture_events() -> list[Event]:
    return [parse_file(path) for path in sorted(FIXTURES.glob("*.json"))]


def body(message: Message) -> str:
    """A part's visible text without its "(k/n)" header."""
    return HEADER.sub("", message.text or "", count=1)


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def callback_data(keyboard: Keyboard) -> list[str]:
    return [b.callback_data for row in keyboard for b in row if b.callback_data is not None]


# Every type, both styles ------------------------------------------------------------------------------------


def test_fixtures_cover_every_catalog_type() -> None:
    assert {event.type for event in fixture_events()} == set(CATALOG)


@pytest.mark.parametrize("style", ["concise", "detailed"])
def test_every_fixture_type_renders_and_is_accepted(telegram: Telegram, style: str) -> None:
    for event in fixture_events():
        rendered = render(event, style=style, tz="Europe/Paris")
        messages = telegram.send_rendered(rendered)
        first = messages[0].text or ""
        assert first.startswith(f"{event.emoji} {event.title}"), event.type
        assert "claude-code" in messages[-1].text
        assert messages[0].entities[0].type == "bold"


def test_unknown_type_is_rendered_with_question_mark_and_raw_name(telegram: Telegram) -> None:
    event = make_event("quantum_leap", "Jumped", description="from 1985", data={"year": 1955})
    [message] = telegram.send_rendered(render(event, style="detailed", tz="UTC"))
    assert message.text.startswith("❓ Jumped")
    assert "quantum_leap" in message.text
    assert "year: 1955" in message.text


def test_detailed_shows_metadata_and_unknown_keys_and_concise_does_not() -> None:
    data = {"status": "done", "metadata": {"runner": "ci-7"}, "flavour": "vanilla", "stack_trace": "at x()"}
    event = make_event(data=data)
    concise = render(event, style="concise", tz="UTC").parts[0]
    detailed = render(event, style="detailed", tz="UTC").parts[0]
    for text in ("runner: ci-7", "flavour: vanilla", "at x()"):
        assert text in detailed
        assert text not in concise
    assert "done" in concise


def test_fields_that_matter_are_formatted_for_humans(telegram: Telegram) -> None:
    files = [f"src/module_{i}.py" for i in range(8)]
    data = {
        "status": "failed",
        "files_affected": files,
        "tests_passed": 40,
        "tests_failed": 2,
        "coverage_percentage": 87.5,
        "duration_ms": 185_000,
        "exit_code": 1,
        "error_message": "AssertionError: expected 3\n  got 4",
        "commit_hash": "3e7d0f41c2b9a8e6d5f4c3b2a1908f7e6d5c4b3a",
        "branch_name": "main",
        "url": "https://ci.example.com/run/7",
    }
    event = make_event("task_failed", "CI failed", data=data)
    [message] = telegram.send_rendered(render(event, style="concise", tz="UTC"))
    text = message.text
    assert "src/module_4.py +3 more" in text and "src/module_5.py" not in text
    assert "✅ 40 passed · ❌ 2 failed" in text
    assert "Coverage: 87.5%" in text
    assert "Duration: 3 min 5 s" in text
    assert "AssertionError: expected 3\n  got 4" in text
    assert "Commit: 3e7d0f41c2b9" in text and "3e7d0f41c2b9a" not in text
    kinds = {entity.type for entity in message.entities}
    assert {"pre", "code", "text_link"} <= kinds
    link = next(e for e in message.entities if e.type == "text_link")
    assert link.url == "https://ci.example.com/run/7"

    [detailed] = telegram.send_rendered(render(event, style="detailed", tz="UTC"))
    assert all(name in detailed.text for name in files)
    assert data["commit_hash"] in detailed.text


def test_progress_bar_and_threshold() -> None:
    progress = make_event("progress_update", "Indexing", data={"metadata": {"current": 3, "total": 4}})
    assert "▓▓▓▓▓▓▓▓░░ 75% (3/4)" in render(progress, style="concise", tz="UTC").parts[0]
    alert = make_event(
        "performance_alert", "Slow", data={"current_value": 150, "threshold": 100, "metric": "p95_ms"}
    )
    assert "p95_ms:</b> 150 (threshold 100, 50% over)" in render(alert, style="concise", tz="UTC").parts[0]


@pytest.mark.parametrize(
    ("ms", "text"),
    [(850, "850 ms"), (1200, "1.2 s"), (5000, "5 s"), (185_000, "3 min 5 s"), (7_500_000, "2 h 5 min")],
)
def test_durations_read_like_a_human_wrote_them(ms: float, text: str) -> None:
    assert human_duration(ms) == text


def test_sizes_read_like_a_human_wrote_them() -> None:
    assert (human_bytes(512), human_bytes(1536), human_bytes(3 * 1024**3)) == ("512 B", "1.5 KB", "3 GB")


def test_times_are_shown_in_the_configured_zone() -> None:
    event = make_event()
    assert "2026-11-29 22:00 JST" in render(event, tz="Asia/Tokyo").parts[0]
    assert "2026-11-29 08:00:00 EST" in render(event, style="detailed", tz="America/New_York").parts[0]
    assert "2026-11-29 13:00 UTC" in render(event, tz="Not/AZone").parts[0]


def test_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="style"):
        render(make_event(), style="verbose", tz="UTC")


# Escaping ---------------------------------------------------------------------------------------------------


def test_markup_in_event_text_shows_literally(telegram: Telegram) -> None:
    event = make_event(
        "info_notification",
        "<b>x</b> *y* _z_",
        description='<a href="javascript:alert(1)">click</a> &amp; `code` [l](http://e.com)',
        data={"url": "javascript:alert(1)", "status": "</i><pre>"},
    )
    [message] = telegram.send_rendered(render(event, style="detailed", tz="UTC"))
    assert message.text.startswith("ℹ️ <b>x</b> *y* _z_")
    assert '<a href="javascript:alert(1)">click</a> &amp; `code` [l](http://e.com)' in message.text
    assert "Status: </i><pre>" in message.text
    assert not [e for e in message.entities if e.type == "text_link"]
    bold = message.entities[0]
    assert (bold.type, bold.offset, bold.length) == ("bold", 3, len("<b>x</b> *y* _z_"))


_MARKUP = st.text(alphabet=st.sampled_from(list("<>&;#*_[]()~`>+-=|{}.!\\\"' \n\tab😀\u200d\r\x00\u202e")))
_ANY_TEXT = st.one_of(st.text(max_size=200), _MARKUP.filter(lambda s: len(s) <= 200))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    type_=st.sampled_from(["task_completion", "approval_request", "build_failed", "git_commit", "x_custom"]),
    style=st.sampled_from(["concise", "detailed"]),
    title=_ANY_TEXT,
    description=_ANY_TEXT,
    value=_ANY_TEXT,
    files=st.lists(_ANY_TEXT, max_size=3),
    option=_ANY_TEXT,
    task_id=_ANY_TEXT,
)
def test_no_event_text_breaks_the_parser_and_all_of_it_shows(
    telegram: Telegram, type_, style, title, description, value, files, option, task_id
) -> None:
    data = {
        "status": value,
        "error_message": value,
        "file_path": value,
        "files_affected": files,
        "url": value,
        "approval_prompt": value,
        "options": [option, "Deny"],
        "code_snippet": value,
        value[:30] or "k": value,
        "actions": [{"text": value, "action": value[:20]}],
    }
    event = make_event(type_, title, description=description, data=data, task_id=task_id)
    rendered = render(event, style=style, tz="UTC")
    messages = telegram.send_rendered(rendered)  # raises BadRequest on "can't parse entities"
    shown = "".join(body(m) for m in messages) if len(messages) > 1 else messages[0].text
    for original in (title, description, value, *files):
        expected = clean_text(original).strip()
        assert (expected in shown) if len(messages) == 1 else (squeeze(expected) in squeeze(shown))
    assert all(len(d.encode()) <= CALLBACK_MAX_BYTES for d in callback_data(rendered.keyboard))


@settings(max_examples=100, deadline=None)
@given(text=_ANY_TEXT)
def test_markdown_v2_escaping_is_accepted_and_shows_the_text(telegram: Telegram, text: str) -> None:
    plain = telegram.send(f"*{escape_markdown_v2('T')}* " + escape_markdown_v2(text), parse_mode="MarkdownV2")
    assert plain.text.rstrip(" \n") == ("T " + clean_text(text)).rstrip(" \n")
    code = telegram.send(f"x `{escape_markdown_v2(text, entity='code')}`", parse_mode="MarkdownV2")
    assert code.text.rstrip(" \n") == ("x " + clean_text(text)).rstrip(" \n")


def test_clean_text_is_what_telegram_shows(telegram: Telegram) -> None:
    text = "a\tb\r\nc\rd\u2028e\x07f\u202eg"
    assert clean_text(text) == "a   b\nc\nd\ne f" + "g"
    assert telegram.send("x " + escape_html(text)).text == "x " + clean_text(text)


# Splitting --------------------------------------------------------------------------------------------------


def _long_text(words: int) -> str:
    vocabulary = ["alpha", "beta", "gamma", "δέλτα", "😀", "<tag>", "&amp;", "x*y_z"]
    lines, line = [], []
    for i in range(words):
        line.append(vocabulary[i % len(vocabulary)] + str(i))
        if i % 13 == 12:
            lines.append(" ".join(line))
            line = []
    return "\n".join([*lines, " ".join(line)])


def _check_parts(messages: list[Message]) -> None:
    count = len(messages)
    for index, message in enumerate(messages, 1):
        assert message.text.startswith(f"({index}/{count})\n")
        assert utf16_len(message.text) <= MAX_TEXT_UTF16
    assert all(m.reply_markup is None for m in messages[:-1])


def test_long_description_is_split_into_numbered_valid_parts(telegram: Telegram) -> None:
    description = _long_text(2600)
    assert len(description) >= 20_000
    event = make_event(description=description, data={"status": "completed"})
    rendered = render(event, style="concise", tz="UTC")
    messages = telegram.send_rendered(rendered)
    assert len(messages) >= 5
    _check_parts(messages)
    assert messages[-1].reply_markup is not None  # Acknowledge / Details, on the last part only
    shown = squeeze("".join(body(m) for m in messages))
    assert squeeze(description) in shown
    assert shown.startswith(squeeze(f"✅ Title{description}"))
    assert all(len(body(m)) > MAX_TEXT_UTF16 // 3 for m in messages[:-1])  # cut at lines, not in pieces


def test_text_without_spaces_is_hard_split_without_breaking_characters(telegram: Telegram) -> None:
    family = "👨\u200d👩\u200d👧"
    description = ("x" * 4000) + family * 900 + "&<>" * 500
    messages = telegram.send_rendered(render(make_event(description=description), tz="UTC"))
    _check_parts(messages)
    assert squeeze(description) in squeeze("".join(body(m) for m in messages))
    for message in messages[1:]:
        assert not body(message).startswith(("\u200d", "👩", "👧"))


def test_long_pre_block_stays_a_pre_block_in_every_part(telegram: Telegram) -> None:
    trace = "\n".join(f'  File "app/module_{i}.py", line {i}, in handler_{i}' for i in range(400))
    event = make_event("error_occurred", "Crash", data={"stack_trace": trace, "error_message": "boom"})
    messages = telegram.send_rendered(render(event, style="detailed", tz="UTC"))
    assert len(messages) >= 4
    _check_parts(messages)
    for message in messages[:-1]:
        assert any(e.type == "pre" for e in message.entities)
    assert squeeze(trace) in squeeze("".join(body(m) for m in messages))


def test_long_approval_prompt_keeps_its_buttons_on_the_last_part(telegram: Telegram) -> None:
    prompt = _long_text(1500)
    event = make_event("approval_request", "Run it?", data={"approval_prompt": prompt})
    messages = telegram.send_rendered(render(event, tz="UTC", token=new_token()))
    assert len(messages) >= 2
    _check_parts(messages)
    buttons = [b.callback_data for row in messages[-1].reply_markup.inline_keyboard for b in row]
    assert buttons[:2] == ["approve_task-1", "deny_task-1"]


def test_split_never_cuts_inside_an_entity_or_tag() -> None:
    markup = "<b>" + "&amp;" * 9000 + "</b>\n" + '<a href="https://e.com/">' + "y" * 5000 + "</a>"
    parts = split_html(markup)
    assert len(parts) == 4
    for part in parts:
        assert re.search(r"&[a-z]*$|<[^>]*$", part.split("</")[0]) is None
        assert part.count("<b>") == part.count("</b>") and part.count("<a ") == part.count("</a>")


_TAGS = [
    ("<b>", "</b>"),
    ("<i>", "</i>"),
    ("<code>", "</code>"),
    ("<pre>", "</pre>"),
    ('<a href="https://e.com/">', "</a>"),
]
_SEGMENTS = st.tuples(st.sampled_from([None, *_TAGS]), _ANY_TEXT)


@settings(max_examples=200, deadline=None)
@given(segments=st.lists(_SEGMENTS, min_size=1, max_size=12), limit=st.integers(32, 400))
def test_split_parts_are_valid_and_give_back_the_whole_text(segments, limit) -> None:
    markup = "\n".join(f"{tag[0]}{escape_html(t)}{tag[1]}" if tag else escape_html(t) for tag, t in segments)
    whole = parse_html(markup).text
    parts = split_html(markup, limit)
    rest = whole
    for index, part in enumerate(parts, 1):
        parsed = parse_html(part)  # raises EntityParseError on any broken tag or entity
        assert utf16_len(parsed.text) <= limit
        if len(parts) == 1:
            assert part == markup
            break
        text = HEADER.sub("", parsed.text, count=1)
        assert parsed.text.startswith(f"({index}/{len(parts)})\n")
        assert rest.startswith(text)
        rest = rest[len(text) :]
        if index < len(parts) and rest[:1] in (" ", "\n"):
            rest = rest[1:]  # the one space or line break the cut replaced
    else:
        assert rest == ""


# Keyboards --------------------------------------------------------------------------------------------------


def test_approval_shows_the_real_prompt_and_options(telegram: Telegram) -> None:
    event = make_event(
        "approval_request",
        "Bash wants to run a command",
        description="Claude Code asks for permission",
        data={"approval_prompt": "rm -rf build/ && make", "options": ["Yes", "No", "Only build/"]},
    )
    rendered = render(event, tz="UTC")
    [message] = telegram.send_rendered(rendered)
    assert "rm -rf build/ && make" in message.text
    assert "1. Yes · 2. No · 3. Only build/" in message.text
    assert "Claude Code asks for permission" in message.text
    assert "Approval Required" not in message.text and "Please respond" not in message.text
    buttons = [(b.text, b.callback_data) for row in rendered.keyboard for b in row]
    assert buttons[:3] == [
        ("✅ Yes", "approve_task-1"),
        ("❌ No", "deny_task-1"),
        ("Only build/", "opt2_task-1"),
    ]
    assert option_for(event, "opt2") == "Only build/"


def test_approval_defaults_and_prompt_from_description() -> None:
    event = make_event("approval_request", "Deploy?", description="Deploy 2.8 to production?")
    text = render(event, tz="UTC").parts[0]
    assert "Deploy 2.8 to production?</blockquote>" in text
    assert "1. Approve · 2. Deny" in text
    assert callback_data(keyboard_for(event, None)) == ["approve_task-1", "deny_task-1", "details_task-1"]


def test_an_option_named_details_asks_for_details_and_decides_nothing() -> None:
    event = make_event("approval_request", "Go?", data={"options": ["Approve", "Details", "Deny", "Later"]})
    assert [(b.text, b.callback_data) for row in keyboard_for(event, None) for b in row] == [
        ("✅ Approve", "approve_task-1"),
        ("📄 Details", "details_task-1"),
        ("❌ Deny", "deny_task-1"),
        ("Later", "opt3_task-1"),
    ]
    assert option_for(event, "opt3") == "Later" and option_for(event, "ack") is None


def test_hook_approval_offers_allow_for_this_session() -> None:
    event = make_event("approval_request", "Edit?", data={"metadata": {"hook_session_id": "s-1"}})
    assert "always_task-1" in callback_data(keyboard_for(event, None))
    assert "always_task-1" not in callback_data(keyboard_for(make_event("approval_request", "Edit?"), None))


def test_task_completion_gets_acknowledge_and_details(telegram: Telegram) -> None:
    rendered = render(make_event(), tz="UTC")
    [message] = telegram.send_rendered(rendered)
    row = message.reply_markup.inline_keyboard[0]
    assert [(b.text, b.callback_data) for b in row] == [
        ("✅ Acknowledge", "ack_task-1"),
        ("📄 Details", "details_task-1"),
    ]
    assert rendered.markup == [[b.to_api() for b in row] for row in rendered.keyboard]
    assert render(make_event("git_push", "Pushed"), tz="UTC").markup is None


def test_data_actions_become_buttons(telegram: Telegram) -> None:
    actions = [
        {"text": "Rerun", "action": "rerun"},
        {"text": "Logs", "action": "open_url", "data": "https://ci.example.com/7"},
        {"text": "Odd", "action": "has spaces_and_underscores"},
        {"text": "Danger", "action": "drop", "style": "danger"},
    ]
    event = make_event("build_failed", "Broken", data={"actions": actions})
    rendered = render(event, tz="UTC")
    telegram.send_rendered(rendered)
    buttons = [b for row in rendered.keyboard for b in row]
    assert [(b.text, b.callback_data, b.url) for b in buttons] == [
        ("Rerun", "rerun_task-1", None),
        ("Logs", None, "https://ci.example.com/7"),
        ("Odd", "act2_task-1", None),
        ("⚠️ Danger", "drop_task-1", None),
    ]


@settings(max_examples=200, deadline=None)
@given(
    task_id=st.one_of(st.text(max_size=250), st.text(alphabet="abc_-.:", min_size=40, max_size=80)),
    options=st.lists(st.text(max_size=80), min_size=1, max_size=10),
    names=st.lists(st.text(max_size=70), max_size=5),
    use_token=st.booleans(),
    hook=st.booleans(),
)
def test_callback_data_always_fits_in_64_bytes(task_id, options, names, use_token, hook) -> None:
    token = new_token() if use_token else None
    data = {"options": options, "actions": [{"text": n, "action": n} for n in names]}
    if hook:
        data["metadata"] = {"hook_session_id": "s"}
    for type_ in ("approval_request", "task_completion", "code_review"):
        event = make_event(type_, "T", task_id=task_id, data=data)
        ref = callback_ref(event, token)
        for item in callback_data(keyboard_for(event, token)):
            assert 1 <= len(item.encode("utf-8")) <= CALLBACK_MAX_BYTES
            assert parse_callback_data(item)[1] == ref


def test_long_or_emoji_task_ids_fall_back_to_the_token(telegram: Telegram) -> None:
    token = new_token()
    for task_id in ("t" * 200, "задача-😀", "has space"):
        event = make_event("approval_request", "Go?", task_id=task_id)
        assert callback_ref(event, token) == token
        keyboard = keyboard_for(event, token)
        assert callback_data(keyboard)[0] == f"approve_{token}"
        telegram.send("ok", keyboard=keyboard)
    without = callback_ref(make_event(task_id="😀" * 50), None)
    assert without.startswith("e") and len(without) == 17


def test_parse_callback_data_keeps_underscores_in_the_ref() -> None:
    assert parse_callback_data("approve_task_42") == ("approve", "task_42")
    for bad in ("approve", "_x", "approve_", "bad action_x"):
        with pytest.raises(ValueError):
            parse_callback_data(bad)
    with pytest.raises(ValueError, match="token"):
        keyboard_for(make_event(), "not a token!")


# Digests and decisions --------------------------------------------------------------------------------------


def test_digest_lists_every_title_grouped_by_type(telegram: Telegram) -> None:
    events = [
        make_event(
            "task_completion", f"Done <{i}>", event_id=f"a{i}", data={"status": "failed" if i else "ok"}
        )
        for i in range(3)
    ] + [
        make_event("git_push", "Pushed *main*", event_id="p"),
        make_event("zzz_custom", "Odd & new", event_id="z"),
    ]
    [part] = render_digest(events, tz="Europe/Paris")
    message = telegram.send(part)
    assert message.text.startswith("📬 Digest: 5 events")
    assert "Task completion (3)" in message.text and "Git push (1)" in message.text
    assert "zzz_custom (1)" in message.text
    for event in events:
        assert f"{event.emoji} {event.title} 14:00" in message.text


def test_long_digest_is_split_and_keeps_every_title(telegram: Telegram) -> None:
    events = [make_event("info_notification", f"Note {i} " + "w" * 150, event_id=str(i)) for i in range(120)]
    parts = render_digest(events, tz="UTC")
    assert len(parts) > 1
    messages = [telegram.send(part) for part in parts]
    _check_parts(messages)
    shown = "".join(body(m) for m in messages)
    assert all(event.title in shown for event in events)


def test_decided_approval_shows_who_decided_what_and_when(telegram: Telegram) -> None:
    event = make_event("approval_request", "Deploy?", data={"approval_prompt": "Ship <2.8>?"})
    sent = telegram.send_rendered(render(event, tz="UTC"))[-1]
    text = render_decision(
        event, "approved", "@alice", datetime(2026, 11, 29, 13, 3, tzinfo=UTC), "Europe/Paris"
    )
    edited = telegram.run(sent.edit_text(text, parse_mode="HTML"))
    assert "✅ Approved by @alice at 14:03 CET" in edited.text
    assert "Ship <2.8>?" in edited.text
    denied = render_decision(event, "deny", "Bob <b>", WHEN, "UTC")
    assert "❌ <b>Denied</b> by Bob &lt;b&gt; at 13:00 UTC" in denied
    assert "Chose “Later”" in render_decision(event, "Later", "@c", WHEN)
    expired = telegram.send(render_expired(event, when=WHEN, tz="UTC"))
    assert "⌛ Expired at 13:00 UTC" in expired.text


def test_decision_on_a_huge_prompt_still_fits_one_message(telegram: Telegram) -> None:
    event = make_event("approval_request", "Big", data={"approval_prompt": "😀 " * 5000})
    message = telegram.send(render_decision(event, "approved", "@alice", WHEN, "UTC"))
    assert utf16_len(message.text) <= MAX_TEXT_UTF16
    assert "more characters, shown in full in the original request" in message.text
    assert message.text.rstrip().endswith("✅ Approved by @alice at 13:00 UTC")
