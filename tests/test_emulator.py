"""The Telegram Bot API emulator, driven over real HTTP like the bridge drives Telegram.

The Bot API side goes through python-telegram-bot's ``Bot`` with ``base_url`` pointing at the emulator; the
control side through httpx.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReactionTypeEmoji
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bridge.telegram.emulator import TEST_TOKEN, EmulatorProcess, EmulatorServer, EmulatorState, build_app
from bridge.telegram.emulator.entities import parse_html, parse_markdown_v2, utf16_len

# The emulator fixtures (tests.emulator_fixtures) are registered for the suite in tests/conftest.py.

CHAT = 4242
MDV2_RESERVED = "_*[]()~`>#+-=|{}.!\\"
# characters Telegram neither trims nor removes (see entities.normalize), so that text comes back unchanged
VISIBLE = st.characters(
    min_codepoint=33, max_codepoint=0x1F64F, blacklist_categories=("Cs", "Zl", "Zp", "Cf", "Mn")
)

# python-telegram-bot warns that RetryAfter.retry_after will become a timedelta; ``seconds`` accepts both.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")


def escape_markdown_v2(text: str) -> str:
    return "".join("\\" + c if c in MDV2_RESERVED else c for c in text)


def escape_html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d, callback_data=d) for d in data]])


def seconds(retry_after: int | timedelta) -> float:
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else float(retry_after)


async def rejected(
    emulator: EmulatorServer, call: Awaitable[Any], error: type[Exception] = BadRequest
) -> str:
    """Await a Bot API call that must fail with ``error``; return Telegram's exact description from the call log
    (python-telegram-bot re-cases the message it raises)."""
    with pytest.raises(error):
        await call
    return emulator.state.call_log()[-1]["description"]


@pytest_asyncio.fixture
async def control(emulator: EmulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emulator.control_url, trust_env=False) as client:
        yield client


# Messages ---------------------------------------------------------------------------------------------------


async def test_get_me_answers_with_the_bot_of_the_token(emulator_bot: Bot) -> None:
    me = await emulator_bot.get_me()
    assert me.is_bot
    assert me.id == int(TEST_TOKEN.split(":")[0])
    assert me.username


async def test_send_message_returns_a_full_message_with_ids_increasing_per_chat(emulator_bot: Bot) -> None:
    first = await emulator_bot.send_message(CHAT, "hello")
    second = await emulator_bot.send_message(CHAT, "again")
    other = await emulator_bot.send_message(-1001234, "to a supergroup")
    group = await emulator_bot.send_message(-555, "to a group")

    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert first.text == "hello" and first.chat.id == CHAT and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.is_bot
    assert first.date.year >= 2024
    assert other.chat.type == "supergroup" and group.chat.type == "group"


async def test_reply_markup_and_reply_are_part_of_the_message(emulator_bot: Bot) -> None:
    asked = await emulator_bot.send_message(CHAT, "Approve?", reply_markup=keyboard("approve_t1", "deny_t1"))
    reply = await emulator_bot.send_message(CHAT, "about that", reply_to_message_id=asked.message_id)

    assert asked.reply_markup is not None
    assert [b.callback_data for b in asked.reply_markup.inline_keyboard[0]] == ["approve_t1", "deny_t1"]
    assert reply.reply_to_message is not None and reply.reply_to_message.message_id == asked.message_id
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await emulator_bot.send_message(CHAT, "x", reply_to_message_id=999)


async def test_edits_replace_text_and_keyboard(emulator: EmulatorServer, emulator_bot: Bot) -> None:
    sent = await emulator_bot.send_message(CHAT, "Approve?", reply_markup=keyboard("approve_t1"))

    edited = await emulator_bot.edit_message_text(
        "*Approved*", CHAT, sent.message_id, parse_mode="MarkdownV2"
    )

    assert edited.text == "Approved" and edited.edit_date is not None
    assert edited.reply_markup is None  # an edit without reply_markup drops the keyboard, as on Telegram
    assert emulator.state.last_message(CHAT)["text"] == "Approved"
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await emulator_bot.edit_message_text("*Approved*", CHAT, sent.message_id, parse_mode="MarkdownV2")
    relabeled = await emulator_bot.edit_message_reply_markup(
        CHAT, sent.message_id, reply_markup=keyboard("ok")
    )
    assert relabeled.reply_markup is not None
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await emulator_bot.edit_message_text("x", CHAT, 999)


async def test_delete_message(emulator: EmulatorServer, emulator_bot: Bot) -> None:
    sent = await emulator_bot.send_message(CHAT, "temporary")
    assert await emulator_bot.delete_message(CHAT, sent.message_id)
    assert emulator.state.last_message(CHAT) is None
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await emulator_bot.delete_message(CHAT, sent.message_id)


async def test_answer_callback_query_is_recorded_once(
    emulator: EmulatorServer,
    emulator_bot: Bot,
    control: httpx.AsyncClient,
) -> None:
    sent = await emulator_bot.send_message(CHAT, "Approve?", reply_markup=keyboard("approve_t1"))
    query = emulator.press(CHAT, sent.message_id, "approve_t1", user={"id": CHAT, "username": "owner"})
    query_id = query["callback_query"]["id"]

    assert await emulator_bot.answer_callback_query(query_id, text="Approved", show_alert=True)

    answered = (await control.get("/callbacks")).json()["callbacks"]
    assert [(a["callback_query_id"], a["text"], a["show_alert"]) for a in answered] == [
        (query_id, "Approved", True)
    ]
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await emulator_bot.answer_callback_query(query_id)


async def test_chat_action_and_reaction(emulator: EmulatorServer, emulator_bot: Bot) -> None:
    incoming = emulator.say(CHAT, "a free-text reply")["message"]

    assert await emulator_bot.send_chat_action(CHAT, "typing")
    assert await emulator_bot.set_message_reaction(CHAT, incoming["message_id"], [ReactionTypeEmoji("⚡")])

    assert emulator.state.reactions[0]["reaction"] == [{"type": "emoji", "emoji": "⚡"}]
    with pytest.raises(BadRequest, match=r"(?i)REACTION_INVALID"):
        await emulator_bot.set_message_reaction(CHAT, incoming["message_id"], [ReactionTypeEmoji("🦆")])
    with pytest.raises(BadRequest, match=r"(?i)wrong parameter action"):
        await emulator_bot.send_chat_action(CHAT, "dancing")


# Telegram's rules -------------------------------------------------------------------------------------------


async def test_tokens_outside_the_accepted_set_are_rejected() -> None:
    strict = EmulatorState(tokens=[TEST_TOKEN])
    with EmulatorServer(strict) as server:
        async with Bot(TEST_TOKEN, base_url=server.base_url) as good:
            assert (await good.get_me()).id == 123456789
        with pytest.raises(InvalidToken, match="Unauthorized"):
            await Bot("987654321:Another-well-formed-token_xyz", base_url=server.base_url).get_me()
        with pytest.raises(InvalidToken, match="Not Found"):
            await Bot("not-a-token", base_url=server.base_url).get_me()


async def test_unknown_method_is_not_found(emulator: EmulatorServer) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(f"{emulator.base_url}{TEST_TOKEN}/sendTelepathy", json={})
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_text_longer_than_4096_utf16_units_is_rejected(emulator_bot: Bot) -> None:
    assert len((await emulator_bot.send_message(CHAT, "x" * 4096)).text) == 4096
    assert await emulator_bot.send_message(CHAT, "😀" * 2048)  # 4096 UTF-16 code units
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await emulator_bot.send_message(CHAT, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await emulator_bot.send_message(CHAT, "😀" * 2049)
    # the limit applies after entity parsing: markup does not count
    assert await emulator_bot.send_message(CHAT, "*" + "x" * 4096 + "*", parse_mode="MarkdownV2")


async def test_empty_text_is_rejected(emulator_bot: Bot) -> None:
    for text in ("", " \n ", "\t\r\n"):
        with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
            await emulator_bot.send_message(CHAT, text)


async def test_text_is_trimmed_like_telegram(emulator_bot: Bot) -> None:
    sent = await emulator_bot.send_message(CHAT, "\n  hello\r\n world \n")
    assert sent.text == "hello\n world"


async def test_callback_data_must_be_1_to_64_bytes(emulator_bot: Bot) -> None:
    assert await emulator_bot.send_message(CHAT, "ok", reply_markup=keyboard("a" * 64))
    assert await emulator_bot.send_message(CHAT, "ok", reply_markup=keyboard("é" * 32))  # 64 bytes
    for data in ("a" * 65, "é" * 33, ""):
        with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
            await emulator_bot.send_message(CHAT, "bad", reply_markup=keyboard(data))


async def test_markdown_v2_is_parsed_into_entities(emulator_bot: Bot) -> None:
    text = (
        "*bold* _italic_ __under__ ~strike~ ||spoiler|| `code` [link](https://example.com/a) "
        "```python\nprint(1)\n```\n>quoted\\!"
    )
    sent = await emulator_bot.send_message(CHAT, text, parse_mode="MarkdownV2")

    assert sent.text == "bold italic under strike spoiler code link print(1)\n\nquoted!"
    found = [(e.type, sent.text[e.offset : e.offset + e.length]) for e in sent.entities]
    assert found == [
        ("bold", "bold"),
        ("italic", "italic"),
        ("underline", "under"),
        ("strikethrough", "strike"),
        ("spoiler", "spoiler"),
        ("code", "code"),
        ("text_link", "link"),
        ("pre", "print(1)\n"),
        ("blockquote", "quoted!"),
    ]
    assert sent.entities[6].url == "https://example.com/a"
    assert sent.entities[7].language == "python"


async def test_markdown_v2_offsets_count_utf16_units(emulator_bot: Bot) -> None:
    sent = await emulator_bot.send_message(CHAT, "😀 *b😀*", parse_mode="MarkdownV2")
    assert [(e.offset, e.length) for e in sent.entities] == [(3, 3)]


@pytest.mark.parametrize("char", list("_*[]()~`>#+-=|{}.!"))
async def test_markdown_v2_rejects_unescaped_reserved_characters(
    emulator: EmulatorServer,
    emulator_bot: Bot,
    char: str,
) -> None:
    description = await rejected(
        emulator, emulator_bot.send_message(CHAT, f"x {char}", parse_mode="MarkdownV2")
    )

    if char in "_*~`[":  # these open an entity instead, which then never ends
        assert description.startswith("Bad Request: can't parse entities: Can't find end of ")
    else:
        assert description == (
            f"Bad Request: can't parse entities: Character '{char}' is reserved and must be escaped with the "
            "preceding '\\'"
        )
    assert await emulator_bot.send_message(CHAT, f"x \\{char}", parse_mode="MarkdownV2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("*bold", "Can't find end of Bold entity at byte offset 0"),
        ("ok _it", "Can't find end of Italic entity at byte offset 3"),
        ("é __u", "Can't find end of Underline entity at byte offset 3"),
        ("`code", "Can't find end of Code entity at byte offset 0"),
        ("```\npre", "Can't find end of Pre entity at byte offset 0"),
        ("[link](https://x.org", "Can't find end of a URL at byte offset 7"),
        ("*a _b* c_", "Can't find end of Italic entity at byte offset 8"),  # the innermost one, like tdlib
    ],
)
async def test_markdown_v2_rejects_unclosed_entities(
    emulator: EmulatorServer,
    emulator_bot: Bot,
    text: str,
    message: str,
) -> None:
    description = await rejected(emulator, emulator_bot.send_message(CHAT, text, parse_mode="MarkdownV2"))
    assert description == f"Bad Request: can't parse entities: {message}"


async def test_legacy_markdown_is_parsed_too(emulator: EmulatorServer, emulator_bot: Bot) -> None:
    sent = await emulator_bot.send_message(
        CHAT, "*bold* _it_ [x](http://e.com) a\\_b 1.5!", parse_mode="Markdown"
    )

    assert sent.text == "bold it x a_b 1.5!"
    assert [e.type for e in sent.entities] == ["bold", "italic", "text_link"]
    description = await rejected(emulator, emulator_bot.send_message(CHAT, "*open", parse_mode="Markdown"))
    assert (
        description
        == "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0"
    )


async def test_html_is_parsed_into_entities(emulator_bot: Bot) -> None:
    text = (
        '<b>bold</b> <i>it</i> <u>u</u> <s>s</s> <span class="tg-spoiler">sp</span> <code>c</code> '
        '<a href="https://example.com">link</a> <pre><code class="language-py">x = 1</code></pre> '
        "&lt;tag&gt; &amp; &quot; &#128512; <blockquote>q</blockquote>"
    )
    sent = await emulator_bot.send_message(CHAT, text, parse_mode="HTML")

    assert sent.text == 'bold it u s sp c link x = 1 <tag> & " 😀 q'
    assert [e.type for e in sent.entities] == [
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "code",
        "text_link",
        "pre",
        "blockquote",
    ]
    assert sent.entities[7].language == "py"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("fish & chips", "Unescaped '&' at byte offset 5"),
    ],
)
async def test_html_rejects_bad_markup(
    emulator: EmulatorServer,
    emulator_bot: Bot,
    text: str,
    message: str,
) -> None:
    description = await rejected(emulator, emulator_bot.send_message(CHAT, text, parse_mode="HTML"))
    assert description.startswith(f"Bad Request: can't parse entities: {message}")


async def test_faithful_html_keeps_a_bare_ampersand(emulator_bot: Bot, control: httpx.AsyncClient) -> None:
    await control.post("/settings", json={"strict_html": False})
    assert (await emulator_bot.send_message(CHAT, "fish & chips", parse_mode="HTML")).text == "fish & chips"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escaped_markdown_v2_parses_back_to_the_original(text: str) -> None:
    parsed = parse_markdown_v2(escape_markdown_v2(text))
    assert parsed.text == text and parsed.entities == []


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(min_size=1))
def test_escaped_text_inside_bold_keeps_its_utf16_length(prefix: str, inner: str) -> None:
    parsed = parse_markdown_v2(escape_markdown_v2(prefix) + "*" + escape_markdown_v2(inner) + "*")
    assert parsed.text == prefix + inner
    assert [(e.offset, e.length) for e in parsed.entities] == [(utf16_len(prefix), utf16_len(inner))]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escaped_html_parses_back_to_the_original(text: str) -> None:
    parsed = parse_html(escape_html(text))
    assert parsed.text == text and parsed.entities == []


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1), st.sampled_from(MDV2_RESERVED)
)
def test_an_unescaped_reserved_character_is_never_accepted_silently(text: str, char: str) -> None:
    escaped = escape_markdown_v2(text)
    try:
        parsed = parse_markdown_v2(escaped + char)
    except ValueError:
        return
    if char == ">":  # '>' at the start of a line opens a blockquote ('\r' does not count, as in tdlib)
        assert text.rsplit("\n", 1)[-1].strip("\r") == ""
        assert parsed.text == text and [e.kind for e in parsed.entities] in ([], ["BlockQuote"])
    else:  # a backslash at the end is literal, like one before a non-ASCII character
        assert char == "\\" and parsed.text == text + "\\"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=VISIBLE, min_size=1, max_size=80))
def test_escaped_text_is_accepted_over_http(emulator_server: EmulatorServer, text: str) -> None:
    sent = httpx.post(
        f"{emulator_server.base_url}{TEST_TOKEN}/sendMessage",
        json={"chat_id": CHAT, "text": escape_markdown_v2(text), "parse_mode": "MarkdownV2"},
        trust_env=False,
    ).json()
    assert sent["ok"], sent
    assert sent["result"]["text"] == text


# Updates ----------------------------------------------------------------------------------------------------


async def test_get_updates_returns_an_injected_callback_immediately(
    emulator: EmulatorServer,
    emulator_bot: Bot,
    control: httpx.AsyncClient,
) -> None:
    sent = await emulator_bot.send_message(CHAT, "Approve?", reply_markup=keyboard("approve_t1"))
    poll = asyncio.create_task(emulator_bot.get_updates(timeout=10))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    pressed = await control.post(
        "/callback",
        json={"chat_id": CHAT, "message_id": sent.message_id, "data": "approve_t1", "user": {"id": CHAT}},
    )
    updates = await poll

    assert pressed.json()["ok"]
    assert time.monotonic() - started < 1.0
    query = updates[0].callback_query
    assert query is not None and query.data == "approve_t1" and query.from_user.id == CHAT
    assert query.message is not None and query.message.message_id == sent.message_id


async def test_get_updates_times_out_empty(emulator_bot: Bot) -> None:
    started = time.monotonic()
    assert await emulator_bot.get_updates(timeout=0.3) == ()
    assert 0.25 < time.monotonic() - started < 2.0


async def test_an_offset_confirms_earlier_updates(emulator: EmulatorServer, emulator_bot: Bot) -> None:
    for text in ("one", "two", "three"):
        emulator.say(CHAT, text)

    first = await emulator_bot.get_updates(limit=2)
    again = await emulator_bot.get_updates()
    rest = await emulator_bot.get_updates(offset=first[-1].update_id + 1)

    assert [u.message.text for u in first] == ["one", "two"]
    assert len(again) == 3  # nothing is confirmed until an offset passes it
    assert [u.message.text for u in rest] == ["three"]
    assert await emulator_bot.get_updates(offset=rest[-1].update_id + 1) == ()


async def test_a_second_poller_terminates_the_first_with_409(emulator: EmulatorServer) -> None:
    async with (
        Bot(TEST_TOKEN, base_url=emulator.base_url) as first,
        Bot(TEST_TOKEN, base_url=emulator.base_url) as second,
    ):
        polls_before = emulator.state.poll_generation
        waiting = asyncio.create_task(first.get_updates(timeout=10))
        while emulator.state.poll_generation == polls_before:  # until the first poll is being held
            await asyncio.sleep(0.01)
        assert await second.get_updates(timeout=0.1) == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await waiting


async def test_user_messages_reach_the_bot_with_command_entities(
    emulator: EmulatorServer,
    emulator_bot: Bot,
    control: httpx.AsyncClient,
) -> None:
    sent = await emulator_bot.send_message(CHAT, "Build failed")
    await control.post("/message", json={"chat_id": CHAT, "text": "/cct:mute", "user": {"id": CHAT}})
    await control.post(
        "/message", json={"chat_id": CHAT, "text": "retry it", "reply_to_message_id": sent.message_id}
    )

    updates = await emulator_bot.get_updates()

    command, reply = (u.message for u in updates)
    assert command.text == "/cct:mute" and command.entities[0].type == "bot_command"
    assert command.entities[0].length == len("/cct")
    assert reply.reply_to_message is not None and reply.reply_to_message.text == "Build failed"
    listed = (await control.get("/messages", params={"chat_id": CHAT, "incoming": 1})).json()["messages"]
    assert [(m["outgoing"], m["message"].get("text")) for m in listed] == [
        (True, "Build failed"),
        (False, "/cct:mute"),
        (False, "retry it"),
    ]


async def test_listing_messages_can_wait_for_the_next_one(
    emulator_bot: Bot, control: httpx.AsyncClient
) -> None:
    waiting = asyncio.create_task(control.get("/messages", params={"since": 0, "wait": 5}))
    await asyncio.sleep(0.05)
    await emulator_bot.send_message(CHAT, "news")
    listed = (await waiting).json()["messages"]
    assert [m["message"]["text"] for m in listed] == ["news"]


@dataclass
class WebhookReceiver:
    """A plain http.server standing in for the bridge's webhook view."""

    url: str = ""
    status: int = 200
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/telegram/webhook/abc"
    yield receiver
    server.shutdown()
    server.server_close()


async def test_a_webhook_receives_updates_with_the_secret_header(
    emulator: EmulatorServer,
    emulator_bot: Bot,
    webhook_receiver: WebhookReceiver,
) -> None:
    assert await emulator_bot.set_webhook(webhook_receiver.url, secret_token="s3cret-token")
    emulator.say(CHAT, "hello webhook")

    assert await asyncio.to_thread(webhook_receiver.arrived.wait, 5)
    headers, update = webhook_receiver.received[0]
    assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret-token"
    assert update["message"]["text"] == "hello webhook"
    info = await emulator_bot.get_webhook_info()
    for _ in range(100):  # the receiver has the update; its 200 may still be on the way back
        if info.pending_update_count == 0:
            break
        await asyncio.sleep(0.02)
        info = await emulator_bot.get_webhook_info()
    assert info.url == webhook_receiver.url and info.pending_update_count == 0
    with pytest.raises(Conflict, match="webhook is active"):
        await emulator_bot.get_updates()

    assert await emulator_bot.delete_webhook()
    emulator.say(CHAT, "back to polling")
    assert [u.message.text for u in await emulator_bot.get_updates()] == ["back to polling"]


async def test_a_failing_webhook_keeps_the_update_and_reports_the_error(
    emulator: EmulatorServer,
    emulator_bot: Bot,
    webhook_receiver: WebhookReceiver,
) -> None:
    webhook_receiver.status = 500
    await emulator_bot.set_webhook(webhook_receiver.url)
    emulator.say(CHAT, "please retry")
    assert await asyncio.to_thread(webhook_receiver.arrived.wait, 5)
    await asyncio.sleep(0.05)

    info = await emulator_bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert info.last_error_message is not None and "500" in info.last_error_message
    await emulator_bot.delete_webhook(drop_pending_updates=True)


# Faults and limits ------------------------------------------------------------------------------------------


async def test_an_injected_429_surfaces_as_retry_after(emulator_bot: Bot, control: httpx.AsyncClient) -> None:
    await control.post(
        "/faults", json={"method": "sendMessage", "status": 429, "retry_after": 7, "fail_next": 2}
    )

    for _ in range(2):
        with pytest.raises(RetryAfter) as raised:
            await emulator_bot.send_message(CHAT, "x")
        assert seconds(raised.value.retry_after) == 7
    assert await emulator_bot.send_message(CHAT, "through")
    assert (await control.get("/stats")).json()["too_many_requests"] == 2


@pytest.mark.parametrize("status", [500, 502])
async def test_an_injected_server_error_surfaces_as_network_error(
    emulator: EmulatorServer,
    emulator_bot: Bot,
    control: httpx.AsyncClient,
    status: int,
) -> None:
    await control.post("/faults", json={"status": status})
    with pytest.raises(NetworkError):
        await emulator_bot.send_message(CHAT, "lost")
    assert emulator.state.last_message(CHAT) is None  # a failed call has no effect
    assert await emulator_bot.send_message(CHAT, "through")


async def test_a_held_request_times_out_the_client(
    emulator: EmulatorServer, control: httpx.AsyncClient
) -> None:
    await control.post("/faults", json={"method": "sendMessage", "timeout": True, "apply": True})
    request = HTTPXRequest(read_timeout=0.3)
    async with Bot(TEST_TOKEN, base_url=emulator.base_url, request=request) as bot:
        with pytest.raises(TimedOut):
            await bot.send_message(CHAT, "sent, but the answer is lost")
    assert emulator.state.last_message(CHAT)["text"] == "sent, but the answer is lost"


async def test_a_delay_slows_the_answer(emulator_bot: Bot, control: httpx.AsyncClient) -> None:
    await control.post("/faults", json={"method": "sendMessage", "delay_ms": 200})
    started = time.monotonic()
    assert await emulator_bot.send_message(CHAT, "slow")
    assert time.monotonic() - started >= 0.2


async def test_random_faults_follow_their_probability(emulator_bot: Bot, control: httpx.AsyncClient) -> None:
    await control.post("/faults", json={"status": 500, "probability": 0.5})
    failures = 0
    for _ in range(60):
        try:
            await emulator_bot.send_message(CHAT, "maybe")
        except NetworkError:
            failures += 1
    assert 10 < failures < 50
    assert (await control.get("/faults")).json()["rules"][0]["fired"] == failures


async def test_flood_limit_answers_429_and_the_stats_count_them(
    emulator_bot: Bot,
    control: httpx.AsyncClient,
) -> None:
    await control.post("/limits", json={"enabled": True, "per_chat_per_second": 1, "per_chat_burst": 3})
    refused = []
    for i in range(5):
        try:
            await emulator_bot.send_message(CHAT, f"burst {i}")
        except RetryAfter as error:
            refused.append(seconds(error.retry_after))

    assert refused and all(r >= 1 for r in refused)
    stats = (await control.get("/stats")).json()
    assert stats["flood_429"] == len(refused) == 5 - stats["messages_per_chat"][str(CHAT)]
    assert stats["max_per_chat_per_second"] == 5 - len(refused)


async def test_group_and_global_limits(emulator_bot: Bot, control: httpx.AsyncClient) -> None:
    await control.post(
        "/limits",
        json={"enabled": True, "per_chat_per_second": 100, "per_chat_burst": 100, "per_group_per_minute": 20},
    )
    for i in range(20):
        await emulator_bot.send_message(-100777, f"group {i}")
    with pytest.raises(RetryAfter):
        await emulator_bot.send_message(-100777, "one too many this minute")

    await control.post("/limits", json={"global_per_second": 5})
    with pytest.raises(RetryAfter):
        for chat in range(1, 10):
            await emulator_bot.send_message(chat, "fan-out")


async def test_blocked_missing_and_migrated_chats(emulator_bot: Bot, control: httpx.AsyncClient) -> None:
    await control.post("/chats", json={"chat_id": 11, "status": "blocked"})
    await control.post("/chats", json={"chat_id": 12, "status": "not_found"})
    await control.post("/chats", json={"chat_id": -13, "status": "migrated", "migrate_to_chat_id": -10013})

    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await emulator_bot.send_message(11, "x")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await emulator_bot.send_message(12, "x")
    with pytest.raises(ChatMigrated) as migrated:
        await emulator_bot.send_message(-13, "x")
    assert migrated.value.new_chat_id == -10013
    assert await emulator_bot.send_message(-10013, "x")


# Files, control API, embedding ------------------------------------------------------------------------------


async def test_uploaded_files_are_stored_and_downloadable(emulator_bot: Bot) -> None:
    photo = await emulator_bot.send_photo(CHAT, b"\x89PNG fake", caption="<b>chart</b>", parse_mode="HTML")
    document = await emulator_bot.send_document(CHAT, b"log line\n", filename="build.log")

    assert photo.caption == "chart" and photo.caption_entities[0].type == "bold"
    assert document.document is not None and document.document.file_name == "build.log"
    file = await emulator_bot.get_file(document.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"log line\n"
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await emulator_bot.get_file("nope")


async def test_files_and_chat_actions_go_into_a_forum_topic(
    emulator: EmulatorServer, emulator_bot: Bot
) -> None:
    forum = -1001234567
    topic = await emulator_bot.create_forum_topic(forum, "api")
    thread = topic.message_thread_id
    photo = await emulator_bot.send_photo(forum, b"\x89PNG fake", message_thread_id=thread)
    document = await emulator_bot.send_document(
        forum, b"log\n", filename="build.log", message_thread_id=thread
    )
    assert await emulator_bot.send_chat_action(forum, "typing", message_thread_id=thread)

    assert (photo.message_thread_id, photo.is_topic_message) == (thread, True)
    assert (document.message_thread_id, document.is_topic_message) == (thread, True)
    (action,) = emulator.state.call_log("sendChatAction")
    assert int(action["params"]["message_thread_id"]) == thread


async def test_injected_photo_reaches_the_bot(emulator_bot: Bot, control: httpx.AsyncClient) -> None:
    await control.post(
        "/message",
        json={"chat_id": CHAT, "photo": {"content": "pixels", "file_name": "shot.jpg"}, "caption": "look"},
    )
    (update,) = await emulator_bot.get_updates()
    assert update.message.caption == "look" and update.message.photo
    file = await emulator_bot.get_file(update.message.photo[-1].file_id)
    assert bytes(await file.download_as_bytearray()) == b"pixels"


async def test_calls_are_logged_with_their_outcome(emulator_bot: Bot, control: httpx.AsyncClient) -> None:
    await emulator_bot.send_message(CHAT, "logged")
    with pytest.raises(BadRequest):
        await emulator_bot.send_message(CHAT, "")

    calls = (await control.get("/calls", params={"method": "sendMessage"})).json()["calls"]
    assert [(c["params"]["text"], c["ok"], c["status"]) for c in calls] == [
        ("logged", True, 200),
        ("", False, 400),
    ]
    assert calls[1]["description"] == "Bad Request: message text is empty"


async def test_control_api_rejects_bad_input(control: httpx.AsyncClient) -> None:
    assert (await control.post("/faults", json={"bogus": 1})).status_code == 400
    assert (await control.post("/limits", json={"per_chat_per_second": 0})).status_code == 400
    assert (await control.post("/chats", json={"chat_id": 1, "status": "migrated"})).status_code == 400
    assert (
        await control.post("/callback", json={"chat_id": "x", "message_id": 1, "data": "d"})
    ).status_code == 400


async def test_reset_forgets_everything(
    emulator: EmulatorServer, emulator_bot: Bot, control: httpx.AsyncClient
) -> None:
    await emulator_bot.send_message(CHAT, "before")
    await control.post("/faults", json={"status": 500, "probability": 1.0})
    await control.post("/reset")

    assert emulator.state.sent_messages() == []
    assert (await emulator_bot.send_message(CHAT, "after")).message_id == 1


async def test_the_app_mounts_under_a_prefix() -> None:
    app = build_app(EmulatorState(), prefix="/telegram-emulator")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        me = await client.get(f"/telegram-emulator/bot{TEST_TOKEN}/getMe")
        stats = await client.get("/telegram-emulator/_emulator/stats")
    assert me.json()["ok"] and stats.json()["calls_total"] == 1


def test_the_standalone_server_answers() -> None:
    with EmulatorProcess() as process:
        answer = httpx.get(f"{process.base_url}{TEST_TOKEN}/getMe", trust_env=False).json()
        stats = httpx.get(f"{process.control_url}/stats", trust_env=False).json()
    assert answer["ok"] and answer["result"]["is_bot"]
    assert stats["calls_total"] == 1
