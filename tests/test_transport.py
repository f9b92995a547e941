"""The Bot API transport, against the project's emulator over real HTTP: results, and every error mapped."""

from __future__ import annotations

import asyncio
import logging
import socket
import traceback

import httpx
import pytest
from redis.asyncio import Redis
from telegram.request import HTTPXRequest

from bridge.telegram.emulator.faults import FaultRule
from bridge.telegram.limits import LocalRateLimiter, RateLimits, RedisRateLimiter
from bridge.telegram.transport import SentMessage, TelegramTransport, TransportError
from bridge.telegram.wire import KeepAlivePool
from tests.emulator_fixtures import TEST_TOKEN, emulator, emulator_server  # noqa: F401

# python-telegram-bot warns about its own int retry_after when it builds RetryAfter; we accept both forms.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

KEYBOARD = [
    [{"text": "Approve", "callback_data": "approve_t1"}, {"text": "Deny", "callback_data": "deny_t1"}]
]


@pytest.fixture
async def transport(emulator):  # noqa: F811
    async with TelegramTransport(TEST_TOKEN, base_url=emulator.base_url, read_timeout=2.0) as transport:
        yield transport


def add_fault(emulator, **rule) -> None:  # noqa: F811
    with emulator.state.lock:
        emulator.state.faults.add(FaultRule.from_json(rule))


def set_limits(emulator, **limits) -> None:  # noqa: F811
    """Telegram-like flood limits at the emulator, through its control API."""
    httpx.post(f"{emulator.control_url}/limits", json=limits).raise_for_status()


async def send_error(
    transport: TelegramTransport, chat_id: int = 42, text: str = "hello", **options
) -> TransportError:
    with pytest.raises(TransportError) as caught:
        await transport.send_message(chat_id, text, **options)
    return caught.value


async def test_start_signs_in_with_get_me(transport):
    assert transport.identity is not None
    assert transport.identity.id == int(TEST_TOKEN.split(":")[0])
    assert transport.identity.username


async def test_send_message_returns_the_new_message(transport, emulator):  # noqa: F811
    sent = await transport.send_message(42, "*Build* passed", parse_mode="MarkdownV2", reply_markup=KEYBOARD)

    assert isinstance(sent, SentMessage)
    assert sent.chat_id == 42 and sent.message_id > 0
    message = emulator.state.last_message(42)
    assert message["message_id"] == sent.message_id
    assert message["text"] == "Build passed"
    assert message["reply_markup"]["inline_keyboard"][0][1]["callback_data"] == "deny_t1"


async def test_reply_to_a_missing_message_still_sends(transport, emulator):  # noqa: F811
    first = await transport.send_message(42, "first")

    reply = await transport.send_message(42, "reply", reply_to=first.message_id)
    orphan = await transport.send_message(42, "orphan", reply_to=99_999)

    assert emulator.state.last_message(42)["message_id"] == orphan.message_id
    assert reply.message_id == first.message_id + 1


@pytest.mark.parametrize("timedelta_form", [False, True], ids=["int", "timedelta"])
async def test_flood_answer_is_temporary_with_retry_after(transport, emulator, monkeypatch, timedelta_form):  # noqa: F811
    if timedelta_form:
        monkeypatch.setenv("PTB_TIMEDELTA", "true")  # python-telegram-bot's future default
    await transport.send_message(42, "just before")  # the chat is busy: the 429 may be its own limit's
    add_fault(emulator, method="sendMessage", status=429, retry_after=7)

    error = await send_error(transport)

    assert (error.permanent, error.reason, error.retry_after) == (False, "rate_limited", 7.0)
    assert not error.global_limit


async def test_a_429_for_a_chat_over_its_own_flood_limit_is_that_chats(transport, emulator):  # noqa: F811
    set_limits(emulator, enabled=True, per_chat_per_second=1, per_chat_burst=1, global_per_second=30)
    await transport.send_message(42, "first")

    error = await send_error(transport, 42, "second, at once")

    assert error.retry_after and not error.global_limit


async def test_a_429_for_a_chat_that_sent_nothing_within_its_limits_is_the_bots_global_limit(
    transport,
    emulator,  # noqa: F811
):
    set_limits(emulator, enabled=True, per_chat_per_second=100, per_chat_burst=100, global_per_second=1)
    await transport.send_message(42, "fills the bot's second")

    error = await send_error(transport, 43, "first to this chat")

    assert error.retry_after and error.global_limit


async def test_a_429_for_a_group_that_had_a_minutes_worth_of_sends_is_that_groups(transport, emulator):  # noqa: F811
    group = -100123
    for n in range(20):  # Telegram's 20 messages a minute to one group
        await transport.send_message(group, f"update {n}")
    await asyncio.sleep(1.05)  # past the one-second per-chat window, not the group's minute
    add_fault(emulator, method="sendMessage", status=429, retry_after=40)

    error = await send_error(transport, group)

    assert error.retry_after == 40.0 and not error.global_limit


async def test_flood_answer_without_a_chat_is_global(transport, emulator):  # noqa: F811
    add_fault(emulator, method="answerCallbackQuery", status=429, retry_after=2)

    with pytest.raises(TransportError) as caught:
        await transport.answer_callback("123")

    assert caught.value.global_limit and caught.value.retry_after == 2.0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_temporary(transport, emulator, status):  # noqa: F811
    add_fault(emulator, method="sendMessage", status=status)

    error = await send_error(transport)

    assert (error.permanent, error.reason, error.api_unavailable) == (False, "server_error", True)


async def test_timeout_is_temporary(emulator):  # noqa: F811
    add_fault(emulator, method="sendMessage", timeout=True, hold_ms=5000)
    async with TelegramTransport(TEST_TOKEN, base_url=emulator.base_url, read_timeout=0.3) as transport:
        error = await send_error(transport)

    assert (error.permanent, error.reason, error.api_unavailable) == (False, "timeout", True)


async def test_unreachable_api_is_temporary():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = TelegramTransport(TEST_TOKEN, base_url=f"http://127.0.0.1:{port}/bot", connect_timeout=1)

    with pytest.raises(TransportError) as caught:
        await transport.start()

    assert (caught.value.permanent, caught.value.reason) == (False, "network")
    await transport.close()


async def test_blocked_chat_is_permanent(transport, emulator):  # noqa: F811
    emulator.state.configure_chat(43, "blocked")

    error = await send_error(transport, 43)

    assert (error.permanent, error.reason) == (True, "blocked")
    assert "blocked" in error.message


async def test_unknown_chat_is_permanent(transport, emulator):  # noqa: F811
    emulator.state.configure_chat(44, "not_found")

    error = await send_error(transport, 44)

    assert (error.permanent, error.reason) == (True, "chat_not_found")


@pytest.mark.parametrize(
    ("text", "parse_mode"), [("*unclosed", "MarkdownV2"), ("x" * 5000, None), ("<b>open", "HTML")]
)
async def test_bad_requests_are_permanent(transport, text, parse_mode):
    error = await send_error(transport, text=text, parse_mode=parse_mode)

    assert (error.permanent, error.reason) == (True, "bad_request")


async def test_malformed_keyboard_is_a_permanent_bad_request(transport):
    error = await send_error(transport, reply_markup=[[{"callback_data": "no_text"}]])

    assert (error.permanent, error.reason) == (True, "bad_request")


async def test_migrated_group_names_the_supergroup(transport, emulator):  # noqa: F811
    emulator.state.configure_chat(-45, "migrated", -1000000000045)

    error = await send_error(transport, -45)

    assert (error.permanent, error.reason, error.migrate_to_chat_id) == (False, "migrated", -1000000000045)


@pytest.mark.parametrize("token", ["not-a-token", "42:short"])
async def test_bad_token_at_start_is_permanent_and_not_echoed(emulator, token):  # noqa: F811
    transport = TelegramTransport(token, base_url=emulator.base_url)

    with pytest.raises(TransportError) as caught:
        await transport.start()

    assert (caught.value.permanent, caught.value.reason) == (True, "invalid_token")
    assert token not in "".join(traceback.format_exception(caught.value))
    await transport.close()


def test_empty_token_is_refused_at_once():
    with pytest.raises(TransportError) as caught:
        TelegramTransport("")

    assert caught.value.permanent


async def test_edit_replaces_text_and_keyboard(transport, emulator):  # noqa: F811
    sent = await transport.send_message(42, "Approve deploy?", reply_markup=KEYBOARD)

    changed = await transport.edit_message(42, sent.message_id, "Approved ✅")

    assert changed
    message = emulator.state.last_message(42)
    assert message["text"] == "Approved ✅" and "reply_markup" not in message


async def test_edit_to_the_same_content_is_success(transport):
    sent = await transport.send_message(42, "<b>same</b>", parse_mode="HTML", reply_markup=KEYBOARD)

    changed = await transport.edit_message(
        42, sent.message_id, "<b>same</b>", parse_mode="HTML", reply_markup=KEYBOARD
    )
    markup_changed = await transport.edit_reply_markup(42, sent.message_id, KEYBOARD)

    assert changed is False and markup_changed is False


async def test_edit_of_a_missing_message_is_permanent(transport):
    with pytest.raises(TransportError) as caught:
        await transport.edit_message(42, 12345, "nothing there")

    assert caught.value.permanent


async def test_keyboard_can_be_removed(transport, emulator):  # noqa: F811
    sent = await transport.send_message(42, "choose", reply_markup=KEYBOARD)

    assert await transport.edit_reply_markup(42, sent.message_id, None)
    assert "reply_markup" not in emulator.state.last_message(42)


async def test_reaction_action_and_callback_answer_reach_the_api(transport, emulator):  # noqa: F811
    sent = await transport.send_message(42, "noted")
    press = emulator.press(42, sent.message_id, "ack_t1")

    await transport.set_reaction(42, sent.message_id, "⚡")
    await transport.send_chat_action(42)
    await transport.answer_callback(press["update"]["callback_query"]["id"], "Acknowledged")

    methods = [call["method"] for call in emulator.state.call_log()]
    assert {"setMessageReaction", "sendChatAction", "answerCallbackQuery"} <= set(methods)
    assert emulator.state.answered_callbacks()[-1]["text"] == "Acknowledged"


async def test_files_are_uploaded(transport, emulator, tmp_path):  # noqa: F811
    report = tmp_path / "report.txt"
    report.write_text("all green\n")

    sent = await transport.send_document(42, report, caption="Test report")

    message = emulator.state.last_message(42)
    assert message["message_id"] == sent.message_id
    assert message["document"]["file_name"] == "report.txt"
    assert message["caption"] == "Test report"


async def test_missing_file_is_permanent(transport, tmp_path):
    with pytest.raises(TransportError) as caught:
        await transport.send_photo(42, tmp_path / "nope.png")

    assert (caught.value.permanent, caught.value.reason) == (True, "file_error")


async def test_get_updates_returns_telegram_updates(transport, emulator):  # noqa: F811
    emulator.say(42, "first reply")
    emulator.say(42, "second reply")

    updates = await transport.get_updates(timeout=0)
    rest = await transport.get_updates(offset=updates[-1].update_id + 1, timeout=0)

    assert [u.message.text for u in updates] == ["first reply", "second reply"]
    assert rest == []


async def test_polling_while_a_webhook_is_set_is_a_temporary_conflict(transport):
    await transport.set_webhook("https://example.invalid/telegram/webhook/s3cret", "s3cret")

    with pytest.raises(TransportError) as caught:
        await transport.get_updates(timeout=0)
    await transport.delete_webhook()

    assert (caught.value.permanent, caught.value.reason) == (False, "conflict")
    assert "webhook" in caught.value.message
    assert await transport.get_updates(timeout=0) == []


async def test_token_never_appears_in_logs(emulator, caplog, tmp_path):  # noqa: F811
    # Everything at DEBUG, even the loggers the settings quiet because they print URLs.
    for name in (None, "httpx", "httpcore", "telegram"):
        caplog.set_level(logging.DEBUG, logger=name)
    report = tmp_path / "r.txt"
    report.write_text("x")

    async with TelegramTransport(TEST_TOKEN, base_url=emulator.base_url) as transport:
        await transport.send_message(42, "hello")
        await transport.send_document(42, report)  # python-telegram-bot and httpx, which log the URL
        add_fault(emulator, method="sendMessage", status=502)
        with pytest.raises(TransportError):
            await transport.send_message(42, "hello")
        await transport.get_updates(timeout=0)

    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert {"httpx", "telegram.Bot"} <= {r.name for r in caplog.records}  # the loggers that carry URLs ran
    assert "<token>/sendDocument" in logged
    assert TEST_TOKEN not in logged
    assert TEST_TOKEN.split(":")[1] not in logged


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_limited_sends_never_trip_flood_control(emulator, redis_url, key_prefix, kind):  # noqa: F811
    """The limiter in front of the transport keeps under Telegram-like limits enforced by the emulator."""
    with emulator.state.lock:
        emulator.state.flood.config = emulator.state.flood.config.updated(
            {"enabled": True, "per_chat_per_second": 1.0, "per_chat_burst": 1, "global_per_second": 5}
        )
    # The emulator shares this process (and its GIL) with the client, and CI runs test files side by side:
    # requests of a burst have reached it more than 150 ms late, beyond the default 50 ms margin sized for a quiet
    # loopback. (The limiter caps a margin at the window itself: 200 ms for the global 5/s.)
    limits = RateLimits(global_per_second=5, per_chat_per_second=1, margin_seconds=0.3)
    client = Redis.from_url(redis_url) if kind == "redis" else None
    limiter = RedisRateLimiter(client, limits, prefix=key_prefix) if client else LocalRateLimiter(limits)

    async with TelegramTransport(TEST_TOKEN, base_url=emulator.base_url) as transport:

        async def send(chat_id: int, n: int) -> None:
            await limiter.acquire(chat_id)
            await transport.send_message(chat_id, f"event {n}")

        await asyncio.gather(*(send(chat_id, n) for n in range(3) for chat_id in (1, 2, 3, 4, -5)))
    if client:
        await client.aclose()

    stats = emulator.state.stats()
    flood = stats.get("flood", stats)
    assert flood["flood_429"] == 0, flood
    assert flood["max_per_chat_per_second"] <= 1
    assert flood["max_global_per_second"] <= 5


SENT = (
    b'{"ok":true,"result":{"message_id":7,"chat":{"id":42,"type":"private"},"date":1700000000,"text":"hi"}}'
)


class TinyApi:
    """A real HTTP/1.1 server on a socket, misbehaving as told: ``answers`` per connection before it closes the
    connection on the next request unanswered; ``chunked`` answers; ``cut`` closes mid-answer."""

    def __init__(
        self, *, answers: int = 1000, chunked: bool = False, cut: bool = False, body: bytes = SENT
    ) -> None:
        self.answers, self.chunked, self.cut, self.body = answers, chunked, cut, body
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/bot"
        return self

    async def __aexit__(self, *exc_info):
        self.server.close()

    async def _serve(self, reader, writer):
        self.connections += 1
        answered = 0
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                if answered == self.answers:
                    break
                answered += 1
                body = self.body
                if self.cut:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + body[:20])
                    break
                if self.chunked:
                    middle = len(body) // 2
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for part in (body[:middle], body[middle:]):
                        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                    writer.write(b"0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        writer.close()


async def test_a_kept_alive_connection_the_server_dropped_is_replaced_without_losing_the_send():
    async with TinyApi(answers=1) as api:
        transport = TelegramTransport(TEST_TOKEN, base_url=api.base_url)
        sent = [await transport.send_message(42, f"hi {n}") for n in range(3)]
        await transport.close()

    assert [s.message_id for s in sent] == [7, 7, 7]
    assert api.connections == 3  # each dropped after one answer; the unanswered request went again, once
    assert sum(b"hi 1" in r for r in api.requests) == 2


async def test_chunked_answers_are_read():
    async with TinyApi(chunked=True) as api:
        transport = TelegramTransport(TEST_TOKEN, base_url=api.base_url)
        first = await transport.send_message(42, "one")
        second = await transport.send_message(42, "two")
        await transport.close()

    assert (first.message_id, first.chat_id, second.message_id) == (7, 42, 7)
    assert first.date.timestamp() == 1700000000 and first.date.tzinfo is not None
    assert api.connections == 1


async def test_an_answer_cut_short_is_a_temporary_network_error_without_the_token():
    async with TinyApi(cut=True) as api:
        transport = TelegramTransport(TEST_TOKEN, base_url=api.base_url)
        error = await send_error(transport)
        await transport.close()

    assert (error.permanent, error.reason, error.api_unavailable) == (False, "network", True)
    assert TEST_TOKEN.split(":")[1] not in "".join(traceback.format_exception(error))
    assert b"/bot" + TEST_TOKEN.encode() + b"/sendMessage" in api.requests[0]


@pytest.mark.parametrize("body", [b'{"ok":true,"result":{"message_id":7}}', b"<html>not json</html>"])
async def test_a_success_answer_without_a_message_is_a_permanent_unexpected_error(body):
    async with TinyApi(body=body) as api:
        transport = TelegramTransport(TEST_TOKEN, base_url=api.base_url)
        error = await send_error(transport)
        await transport.close()

    assert (error.permanent, error.reason) == (True, "unexpected")


async def test_every_call_goes_through_python_telegram_bot_on_the_keep_alive_pool_but_uploads(
    transport,
    emulator,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """The Bot builds every call; its JSON POSTs ride the pool (wire.py), a file upload rides httpx."""
    pooled, by_httpx = [], []
    post_json, httpx_request = KeepAlivePool.post_json, HTTPXRequest.do_request

    async def on_pool(self, path, body):
        pooled.append(path.rsplit("/", 1)[-1])
        return await post_json(self, path, body)

    async def on_httpx(self, url, method, *args, **kwargs):
        by_httpx.append(url.rsplit("/", 1)[-1])
        return await httpx_request(self, url, method, *args, **kwargs)

    monkeypatch.setattr(KeepAlivePool, "post_json", on_pool)
    monkeypatch.setattr(HTTPXRequest, "do_request", on_httpx)
    sent = await transport.send_message(42, "via the Bot", reply_markup=KEYBOARD)
    await transport.edit_message(42, sent.message_id, "edited via the Bot")
    report = tmp_path / "report.txt"
    report.write_text("results")
    await transport.send_document(42, report)
    assert pooled == ["sendMessage", "editMessageText"]
    assert by_httpx == ["sendDocument"]
    calls = emulator.state.calls.select(None, 0)[-3:]
    assert [call["method"] for call in calls] == ["sendMessage", "editMessageText", "sendDocument"]
