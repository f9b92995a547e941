"""The Claude Code channel, end to end: the user's side at the Bot API emulator, the bridge's poller handling the
updates step by step, and real MCP client sessions (in-process, and over stdio in a subprocess) receiving
``notifications/claude/channel`` and sending permission requests."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from mcp import ClientSession, StdioServerParameters
from mcp.client._memory import InMemoryTransport
from mcp.client.extension import NotificationBinding
from mcp.client.stdio import stdio_client
from pydantic import BaseModel, ConfigDict

from bridge.channel import inbox
from bridge.channel.server import CAPABILITIES, build_channel_server
from bridge.models import Approval, AuditEntry, BridgeSettings, ChannelMessage, Recipient
from bridge.pipeline import Pipeline
from bridge.replies.service import Replies, bot_id_of
from bridge.telegram.send import build_sender
from bridge.telegram.transport import TelegramTransport
from tests.emulator_fixtures import TEST_TOKEN
from tests.processes import child_database_url

pytestmark = pytest.mark.django_db(transaction=True)

ALICE, BOB, MALLORY = 111111, 222222, 666666
WAIT = 5.0


def person(user_id: int, name: str) -> dict:
    return {"id": user_id, "username": name, "first_name": name.title()}


class Anything(BaseModel):
    model_config = ConfigDict(extra="allow")


class Claude:
    """What Claude Code is to the channel: a client session that collects channel notifications and verdicts."""

    def __init__(self, session: ClientSession, inbox_: list[dict], verdicts: list[dict]) -> None:
        self.session = session
        self.messages = inbox_
        self.verdicts = verdicts

    async def ask_permission(self, request_id: str, tool_name: str = "Bash", **fields: str) -> None:
        params = {"request_id": request_id, "tool_name": tool_name, "description": "", "input_preview": ""}
        await self.session._dispatcher.notify(
            "notifications/claude/channel/permission_request", {**params, **fields}
        )

    async def expect(self, count: int, what: str = "messages") -> list[dict]:
        seen = getattr(self, what)
        deadline = asyncio.get_running_loop().time() + WAIT
        while len(seen) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} {what}, got {seen}")
            await asyncio.sleep(0.01)
        return list(seen)


def bindings(messages: list[dict], verdicts: list[dict]) -> list[NotificationBinding]:
    async def on_message(params: Anything) -> None:
        messages.append(params.model_dump())

    async def on_verdict(params: Anything) -> None:
        verdicts.append(params.model_dump())

    return [
        NotificationBinding(method="notifications/claude/channel", params_type=Anything, handler=on_message),
        NotificationBinding(
            method="notifications/claude/channel/permission", params_type=Anything, handler=on_verdict
        ),
    ]


@contextlib.asynccontextmanager
async def attached(name: str = "proj") -> AsyncIterator[Claude]:
    """A channel session in-process, as Claude Code opens it (initialize handshake)."""
    os.environ["CC_TELEGRAM_SESSION"] = name
    try:
        messages: list[dict] = []
        verdicts: list[dict] = []
        async with (
            InMemoryTransport(build_channel_server(), raise_exceptions=True) as (read, write),
            ClientSession(read, write, notification_bindings=bindings(messages, verdicts)) as session,
        ):
            result = await session.initialize()
            assert result.capabilities.experimental == CAPABILITIES
            await wait_for_session(name)
            yield Claude(session, messages, verdicts)
    finally:
        os.environ.pop("CC_TELEGRAM_SESSION", None)


async def wait_for_session(name: str) -> None:
    for _ in range(500):
        if await inbox.live_sessions().filter(name=name).aexists():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"session {name} never registered")


class World:
    def __init__(self, settings, emulator) -> None:
        self.settings = settings
        self.emulator = emulator
        self.replies: Replies | None = None

    async def poll(self) -> None:
        """One step of the bridge's poller: what the user did at the emulator is handled and stored."""
        if self.replies is None:
            transport = TelegramTransport(TEST_TOKEN, base_url=self.emulator.base_url)
            await transport.start()
            self.replies = Replies(transport, name="worker-1", bot_id=bot_id_of(TEST_TOKEN))
            self.replies.apply(await sync_to_async(BridgeSettings.load)())
            self.replies.writer.start()
        result = await self.replies.poll_once(timeout=0)
        assert result.state == "polled", result

    async def deliver(self) -> None:
        """One step of the bridge's sender: queued events go out to the emulator."""
        pipeline = Pipeline(sender_factory=build_sender)
        try:
            await pipeline.run_once()
        finally:
            await pipeline.queue.close()

    def say(self, chat_id: int, text: str, user: dict | None = None, **options: Any) -> dict:
        return self.emulator.say(chat_id, text, user=user or person(chat_id, "alice"), **options)["message"]

    def sent(self, chat_id: int) -> list[dict]:
        return self.emulator.state.sent_messages(chat_id)

    def calls(self, method: str) -> list[dict]:
        return self.emulator.state.call_log(method)


@pytest_asyncio.fixture
async def world(folders, emulator):
    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    await Recipient.objects.acreate(chat_id=ALICE, display_name="alice")
    await Recipient.objects.acreate(chat_id=BOB, display_name="bob")
    world = World(folders, emulator)
    yield world
    if world.replies is not None:
        await world.replies.stop()
        await world.replies.transport.close()


# --- inbound ---------------------------------------------------------------------------------------------------
async def test_a_telegram_message_reaches_the_attached_session_as_a_channel_notification(world):
    async with attached("proj") as claude:
        sent = world.say(ALICE, "please run the tests")
        await world.poll()
        (message,) = await claude.expect(1)
    assert message["content"] == "please run the tests"
    meta = message["meta"]
    assert meta["chat_id"] == str(ALICE) and meta["message_id"] == str(sent["message_id"])
    assert (meta["user"], meta["user_id"]) == ("alice", str(ALICE))
    assert all(key.replace("_", "").isalnum() for key in meta)
    stored = await ChannelMessage.objects.aget()
    assert stored.delivered_at is not None


async def test_messages_sent_while_no_session_is_attached_are_delivered_oldest_first_when_one_attaches(world):
    for text in ("one", "two", "three"):
        world.say(ALICE, text)
    await world.poll()
    assert await ChannelMessage.objects.filter(delivered_at=None).acount() == 3

    async with attached("proj") as claude:
        messages = await claude.expect(3)
        await asyncio.sleep(0.3)  # a poll period or so: nothing comes twice
        assert len(claude.messages) == 3
    assert [m["content"] for m in messages] == ["one", "two", "three"]

    async with attached("proj") as again:
        await asyncio.sleep(0.3)
        assert again.messages == []  # delivered once, never again


async def test_two_sessions_each_get_their_own_and_the_bridge_alone_polls(world):
    async with attached("api") as api, attached("web") as web:
        world.say(ALICE, "/to api restart the server")
        world.say(ALICE, "what about the css?")  # no /to: the most recent session
        await world.poll()
        (to_api,) = await api.expect(1)
        (to_web,) = await web.expect(1)
        await asyncio.sleep(0.3)
        assert (len(api.messages), len(web.messages)) == (1, 1)
    assert to_api["content"] == "restart the server"
    assert to_web["content"] == "what about the css?"
    assert len(world.calls("getUpdates")) == 1  # the sessions never poll Telegram: no 409 possible
    assert not [c for c in world.emulator.state.call_log() if c["status"] == 409]


async def test_a_message_claimed_by_a_session_that_died_goes_to_the_next(world):
    session = await sync_to_async(inbox.register)("ghost")
    world.say(ALICE, "are you there?")
    await world.poll()
    (claimed,) = await sync_to_async(inbox.claim)(session)
    assert claimed.delivered_at is None  # claimed, never delivered: the session died
    await (
        type(session)
        .objects.filter(pk=session.pk)
        .aupdate(heartbeat_at=session.heartbeat_at - inbox.STALE_AFTER * 2)
    )
    await sync_to_async(inbox.release_stale)()
    async with attached("proj") as claude:
        (message,) = await claude.expect(1)
    assert message["content"] == "are you there?"


async def test_a_message_from_a_stranger_never_reaches_the_session(world):
    async with attached("proj") as claude:
        world.say(MALLORY, "rm -rf /", user=person(MALLORY, "mallory"))
        await world.poll()
        await asyncio.sleep(0.3)
        assert claude.messages == []
    assert await AuditEntry.objects.filter(action="access.refused").aexists()


# --- tools -----------------------------------------------------------------------------------------------------
async def test_reply_splits_long_text_and_threads_the_first_part(world):
    question = world.say(ALICE, "report?")
    long_text = "\n".join(f"line {i}: <b>not markup</b> & more" for i in range(400))
    async with attached("proj") as claude:
        result = await claude.session.call_tool(
            "reply", {"chat_id": ALICE, "text": long_text, "reply_to": question["message_id"]}
        )
    assert not result.is_error, result
    parts = world.sent(ALICE)
    assert len(parts) >= 4
    assert all(len(p["message"]["text"]) <= 4096 for p in parts)
    texts = [re.sub(r"^\(\d+/\d+\)\s*", "", p["message"]["text"]) for p in parts]
    assert "".join(texts).replace("\n", "") == long_text.replace("\n", "")  # all of it, nothing read as HTML
    first = parts[0]["message"]
    assert first["reply_to_message"]["message_id"] == question["message_id"]


async def test_reply_sends_images_as_photos_and_other_files_as_documents(world, tmp_path):
    image, log = tmp_path / "chart.png", tmp_path / "build.log"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    log.write_text("ok\n")
    async with attached("proj") as claude:
        result = await claude.session.call_tool(
            "reply", {"chat_id": ALICE, "text": "here", "files": [str(image), str(log)]}
        )
        missing = await claude.session.call_tool(
            "reply", {"chat_id": ALICE, "text": "x", "files": [str(tmp_path / "nope.txt")]}
        )
    assert not result.is_error, result
    assert len(world.calls("sendPhoto")) == 1 and len(world.calls("sendDocument")) == 1
    assert missing.is_error and "file not found" in missing.content[0].text


async def test_one_typing_indicator_serves_messages_in_quick_succession_until_the_session_replies(world):
    async with attached("proj") as claude:
        world.say(ALICE, "first")
        world.say(ALICE, "second")
        await world.poll()
        await claude.expect(2)
        world.say(ALICE, "third")
        await world.poll()
        await claude.expect(3)
        await wait_for_calls(world, "sendChatAction", 1)
        result = await claude.session.call_tool("reply", {"chat_id": ALICE, "text": "on it"})
        assert not result.is_error, result
        world.say(ALICE, "fourth")  # the reply ended the indicator: this one shows it again
        await world.poll()
        await claude.expect(4)
        await wait_for_calls(world, "sendChatAction", 2)
    await asyncio.sleep(0.1)
    assert len(world.calls("sendChatAction")) == 2


async def wait_for_calls(world: World, method: str, count: int) -> None:
    for _ in range(500):
        if len(world.calls(method)) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} {method} calls, got {world.calls(method)}")


async def test_react_with_an_emoji_telegram_does_not_offer_is_a_clear_error(world):
    message = world.say(ALICE, "done?")
    async with attached("proj") as claude:
        bad = await claude.session.call_tool(
            "react", {"chat_id": ALICE, "message_id": message["message_id"], "emoji": "🦖"}
        )
        good = await claude.session.call_tool(
            "react", {"chat_id": ALICE, "message_id": message["message_id"], "emoji": "👍"}
        )
    assert bad.is_error and "not one of Telegram's reaction emoji" in bad.content[0].text
    assert '"field": "emoji"' in bad.content[0].text
    assert not good.is_error
    assert len(world.calls("setMessageReaction")) == 1


async def test_edit_message_changes_a_message_the_bot_sent(world):
    async with attached("proj") as claude:
        result = await claude.session.call_tool("reply", {"chat_id": ALICE, "text": "working…"})
        message_id = int(result.content[0].text.split("[")[1].split("]")[0])
        edited = await claude.session.call_tool(
            "edit_message", {"chat_id": ALICE, "message_id": message_id, "text": "done ✅"}
        )
    assert not edited.is_error, edited
    assert world.emulator.state.last_message(ALICE)["text"] == "done ✅"


# --- permission relay ------------------------------------------------------------------------------------------
async def relay_and_press(world: World, claude: Claude, request_id: str, button: str, user: int = ALICE):
    await claude.ask_permission(request_id, "Bash", description="Run the tests", input_preview="make test")
    approval = None
    for _ in range(300):
        approval = await Approval.objects.select_related("event").afirst()
        if approval is not None or await _queued():
            break
        await asyncio.sleep(0.01)
    await world.deliver()
    message = world.emulator.state.last_message(user)
    buttons = {
        b["text"]: b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row
    }
    data = next(value for text, value in buttons.items() if button in text)
    world.emulator.press(user, message["message_id"], data, user=person(user, "alice"))
    await world.poll()
    return message


async def _queued() -> bool:
    from bridge.models import Event

    return await Event.objects.filter(type="approval_request").aexists()


@pytest.mark.parametrize(("button", "behavior"), [("Allow", "allow"), ("Deny", "deny")])
async def test_a_permission_request_is_decided_by_a_button_press_and_the_verdict_goes_back(
    world, button, behavior
):
    async with attached("proj") as claude:
        message = await relay_and_press(world, claude, "abcde", button)
        (verdict,) = await claude.expect(1, "verdicts")
    assert verdict == {"request_id": "abcde", "behavior": behavior}
    assert "Bash" in message["text"] and "make test" in message["text"]
    assert (await Approval.objects.aget()).status == ("approved" if behavior == "allow" else "denied")


async def test_a_typed_approve_is_only_a_message_never_a_verdict(world):
    async with attached("proj") as claude:
        await claude.ask_permission("fghij", "Bash", description="rm -rf build")
        for _ in range(300):
            if await _queued():
                break
            await asyncio.sleep(0.01)
        await world.deliver()
        world.say(ALICE, "approve")
        await world.poll()
        (message,) = await claude.expect(1)
        await asyncio.sleep(0.3)
        assert claude.verdicts == []
    assert message["content"] == "approve"
    assert (await Approval.objects.aget()).status == "pending"


# --- over stdio ------------------------------------------------------------------------------------------------
async def test_a_channel_session_over_stdio_receives_messages_and_verdicts(world):
    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        # The same queue streams as this test's own bridge, when the suite runs on Redis.
        "CC_TELEGRAM_REDIS_PREFIX": django_settings.CC_TELEGRAM_REDIS_PREFIX,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_BASE_URL": world.emulator.base_url,
        "CC_TELEGRAM_HOME": str(world.settings.CC_TELEGRAM_HOME),
        "CC_TELEGRAM_SESSION": "stdio-proj",
    }
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(Path(django_settings.BASE_DIR) / "manage.py"), "mcp_server", "--channel"],
        env=env,
        cwd=str(django_settings.BASE_DIR),
    )
    world.say(ALICE, "queued before the session")
    await world.poll()
    messages: list[dict] = []
    verdicts: list[dict] = []
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, notification_bindings=bindings(messages, verdicts)) as session,
    ):
        result = await session.initialize()
        assert result.capabilities.experimental == CAPABILITIES
        claude = Claude(session, messages, verdicts)
        await claude.expect(1)
        world.say(ALICE, "and one after")
        await world.poll()
        await claude.expect(2)
        await relay_and_press(world, claude, "stdio", "Allow")
        (verdict,) = await claude.expect(1, "verdicts")
    assert [m["content"] for m in messages] == ["queued before the session", "and one after"]
    assert verdict == {"request_id": "stdio", "behavior": "allow"}


# --- files, groups, access -------------------------------------------------------------------------------------
async def test_photos_and_documents_are_downloaded_to_the_inbox_and_named_in_meta(world):
    async with attached("proj") as claude:
        world.emulator.say(
            ALICE,
            photo={"content": "fake jpeg bytes", "file_name": "screen.jpg"},
            caption="what is this error?",
            user=person(ALICE, "alice"),
        )
        world.emulator.say(
            ALICE,
            document={"content": "line 1\nline 2\n", "file_name": "build.log"},
            user=person(ALICE, "alice"),
        )
        await world.poll()
        photo, document = await claude.expect(2)
    assert photo["content"] == "what is this error?"
    assert Path(photo["meta"]["attachment_1"]).read_bytes() == b"fake jpeg bytes"
    assert document["content"] == "(sent 1 file)"
    path = Path(document["meta"]["attachment_1"])
    assert path.read_text() == "line 1\nline 2\n" and path.name.endswith("build.log")
    assert path.parent == Path(world.settings.CC_TELEGRAM_HOME) / "inbox"


GROUP = -100200300


async def test_a_group_reaches_the_session_only_when_it_mentions_the_bot(world):
    await Recipient.objects.acreate(chat_id=GROUP, display_name="team")
    alice = person(ALICE, "alice")
    async with attached("proj") as claude:
        world.say(GROUP, "lunch anyone?", user=alice)
        world.say(GROUP, "@cctelegram_emulator_bot how is the build?", user=alice)
        await world.poll()
        (message,) = await claude.expect(1)
        await asyncio.sleep(0.3)
        assert len(claude.messages) == 1
    assert message["content"] == "how is the build?"
    assert message["meta"]["chat_id"] == str(GROUP)


async def test_a_group_that_is_not_a_recipient_is_refused_and_audited(world):
    async with attached("proj") as claude:
        world.say(GROUP, "@cctelegram_emulator_bot hello", user=person(ALICE, "alice"))
        await world.poll()
        await asyncio.sleep(0.3)
        assert claude.messages == []
    refusal = await AuditEntry.objects.aget(action="access.refused", object_type="telegram_chat")
    assert refusal.object_id == str(GROUP)


async def test_pairing_gives_a_stranger_a_code_an_operator_confirms(world, settings):
    from django.core.management import call_command

    settings.CC_TELEGRAM_ACCESS_POLICY = "pairing"
    world.say(MALLORY, "hi, let me in", user=person(MALLORY, "mallory"))
    await world.poll()
    answer = world.emulator.state.last_message(MALLORY)["text"]
    code = re.search(r"Your pairing code: (\w{6})", answer).group(1)
    world.say(MALLORY, "again", user=person(MALLORY, "mallory"))
    await world.poll()
    assert code in world.emulator.state.last_message(MALLORY)["text"]  # the same code, not a new one

    await sync_to_async(call_command)("pair", code.lower(), stdout=io.StringIO())
    recipient = await Recipient.objects.aget(chat_id=MALLORY)
    assert (recipient.active, recipient.role) == (True, Recipient.Role.VIEWER)
    assert await AuditEntry.objects.filter(action="pairing.confirm").aexists()
    async with attached("proj") as claude:
        world.say(MALLORY, "thanks", user=person(MALLORY, "mallory"))
        await world.poll()
        messages = await claude.expect(1)
    assert messages[-1]["content"] == "thanks"


async def test_a_refused_or_unknown_pairing_code_admits_nobody(world, settings):
    from django.core.management import CommandError, call_command

    settings.CC_TELEGRAM_ACCESS_POLICY = "pairing"
    world.say(MALLORY, "let me in", user=person(MALLORY, "mallory"))
    await world.poll()
    code = re.search(r"code: (\w{6})", world.emulator.state.last_message(MALLORY)["text"]).group(1)
    await sync_to_async(call_command)("pair", code, "--refuse", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no pending pairing code"):
        await sync_to_async(call_command)("pair", code, stdout=io.StringIO())
    assert not await Recipient.objects.filter(chat_id=MALLORY).aexists()
    assert await AuditEntry.objects.filter(action="pairing.refuse").aexists()


async def test_under_the_allowlist_policy_a_stranger_gets_no_answer(world):
    world.say(MALLORY, "hello?", user=person(MALLORY, "mallory"))
    await world.poll()
    assert world.emulator.state.last_message(MALLORY) is None
    assert await AuditEntry.objects.filter(action="access.refused").aexists()


# --- permission relay: expiry and who may press ----------------------------------------------------------------
async def test_an_expired_permission_request_sends_no_verdict_and_leaves_the_terminal_prompt(world):
    from django.utils import timezone

    async with attached("proj") as claude:
        await claude.ask_permission("klmno", "Write", description="write config")
        for _ in range(300):
            if await _queued():
                break
            await asyncio.sleep(0.01)
        await world.deliver()
        await Approval.objects.aupdate(expires_at=timezone.now())
        await world.poll()  # starts the replies worker
        assert await world.replies.expire_once() == 1
        await asyncio.sleep(0.3)
        assert claude.verdicts == []
    assert (await Approval.objects.aget()).status == "expired"
    assert "Expired" in world.emulator.state.last_message(ALICE)["text"]


async def test_a_press_by_someone_who_is_not_an_approver_decides_nothing(world):
    async with attached("proj") as claude:
        await claude.ask_permission("pqrst", "Bash", description="deploy")
        for _ in range(300):
            if await _queued():
                break
            await asyncio.sleep(0.01)
        await world.deliver()
        message = world.emulator.state.last_message(ALICE)
        allow = message["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        world.emulator.press(ALICE, message["message_id"], allow, user=person(MALLORY, "mallory"))
        await world.poll()
        await asyncio.sleep(0.3)
        assert claude.verdicts == []
    assert (await Approval.objects.aget()).status == "pending"
    assert await AuditEntry.objects.filter(action="access.refused").aexists()


async def test_the_session_cannot_send_to_a_chat_that_is_not_a_recipient(world):
    async with attached("proj") as claude:
        result = await claude.session.call_tool("reply", {"chat_id": MALLORY, "text": "hello stranger"})
    assert result.is_error and "not an active recipient" in result.content[0].text
    assert world.emulator.state.last_message(MALLORY) is None


def test_an_operator_confirms_a_pairing_request_in_the_admin(admin_client):
    from django.utils import timezone

    from bridge.models import PairingRequest

    request = PairingRequest.objects.create(
        code="ABC234", user_id=MALLORY, username="mallory", expires_at=timezone.now() + timedelta(hours=1)
    )
    response = admin_client.post(
        "/admin/bridge/pairingrequest/", {"action": "confirm", "_selected_action": [request.pk]}, follow=True
    )
    assert response.status_code == 200
    assert Recipient.objects.get(chat_id=MALLORY).role == Recipient.Role.VIEWER
    assert AuditEntry.objects.get(action="pairing.confirm").actor == "admin"


# --- forum topics ------------------------------------------------------------------------------------------------
FORUM = -100500600


async def topic_of(name: str) -> int:
    for _ in range(500):
        session = await inbox.live_sessions().filter(name=name).exclude(topic_id=None).afirst()
        if session is not None:
            return session.topic_id
        await asyncio.sleep(0.01)
    raise AssertionError(f"session {name} never opened its topic")


@pytest_asyncio.fixture
async def forum(world, settings):
    settings.CC_TELEGRAM_CHANNEL_FORUM = FORUM
    await Recipient.objects.acreate(chat_id=FORUM, display_name="projects forum")
    return FORUM


async def test_each_session_opens_a_topic_and_hears_what_is_written_there(world, forum):
    alice = person(ALICE, "alice")
    async with attached("api") as api, attached("web") as web:
        api_topic, web_topic = await topic_of("api"), await topic_of("web")
        assert api_topic != web_topic
        world.say(FORUM, "restart the server", user=alice, message_thread_id=api_topic)  # no mention needed
        world.say(FORUM, "and the css?", user=alice, message_thread_id=web_topic)
        world.say(
            FORUM, "lunch anyone?", user=alice
        )  # the General topic: group rules, no mention, not passed
        await world.poll()
        (to_api,) = await api.expect(1)
        (to_web,) = await web.expect(1)
        await asyncio.sleep(0.3)
        assert (len(api.messages), len(web.messages)) == (1, 1)
        result = await api.session.call_tool("reply", {"chat_id": FORUM, "text": "restarted"})
        assert not result.is_error, result
    assert (to_api["content"], to_api["meta"]["thread_id"]) == ("restart the server", str(api_topic))
    assert (to_web["content"], to_web["meta"]["thread_id"]) == ("and the css?", str(web_topic))
    created = [c["params"]["name"] for c in world.calls("createForumTopic")]
    assert sorted(created) == ["api", "web"]
    answer = world.emulator.state.last_message(FORUM)
    assert (answer["text"], answer["message_thread_id"]) == ("restarted", api_topic)


async def test_files_and_the_typing_indicator_go_into_the_sessions_topic(world, forum, tmp_path):
    image, log = tmp_path / "chart.png", tmp_path / "build.log"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    log.write_text("ok\n")
    async with attached("api") as api:
        topic = await topic_of("api")
        world.say(FORUM, "show me the chart", user=person(ALICE, "alice"), message_thread_id=topic)
        await world.poll()
        await api.expect(1)
        result = await api.session.call_tool(
            "reply", {"chat_id": FORUM, "text": "here", "files": [str(image), str(log)]}
        )
        assert not result.is_error, result
        await wait_for_calls(world, "sendChatAction", 1)  # sent beside the notification, not before it
    sent = [record["message"] for record in world.sent(FORUM)[-3:]]
    assert ["text" in sent[0], "photo" in sent[1], "document" in sent[2]] == [True, True, True]
    assert [message.get("message_thread_id") for message in sent] == [topic, topic, topic]
    (typing,) = world.calls("sendChatAction")
    assert (int(typing["params"]["chat_id"]), int(typing["params"]["message_thread_id"])) == (FORUM, topic)


async def test_a_session_that_attaches_again_takes_its_topic_back(world, forum):
    async with attached("api"):
        topic = await topic_of("api")
    async with attached("api") as api:
        assert await topic_of("api") == topic  # the same topic, not a new one
        world.say(FORUM, "deploy", user=person(ALICE, "alice"), message_thread_id=topic)
        await world.poll()
        (message,) = await api.expect(1)
    assert message["content"] == "deploy"
    assert [c["params"]["name"] for c in world.calls("createForumTopic")] == ["api"]


async def test_without_a_forum_topic_a_forum_message_follows_the_group_rules(world, settings):
    settings.CC_TELEGRAM_CHANNEL_FORUM = FORUM
    async with attached("proj") as claude:  # the forum is not a recipient: no topic, and its messages refused
        world.say(FORUM, "hello", user=person(ALICE, "alice"), message_thread_id=7)
        await world.poll()
        await asyncio.sleep(0.3)
        assert claude.messages == []
    assert world.calls("createForumTopic") == []
    assert await AuditEntry.objects.filter(action="access.refused", object_id=str(FORUM)).aexists()


async def test_a_waiting_message_written_in_a_topic_is_claimed_by_that_topics_session(world, forum):
    from django.utils import timezone

    web = await sync_to_async(inbox.register)("web")
    api = await sync_to_async(inbox.register)("api")  # the most recent: the default for everything else
    await type(web).objects.filter(pk=web.pk).aupdate(forum_chat_id=FORUM, topic_id=42)
    web.forum_chat_id, web.topic_id = FORUM, 42
    common = {"chat_id": FORUM, "user_id": ALICE, "sent_at": timezone.now()}
    await ChannelMessage.objects.acreate(message_id=1, text="for web", thread_id=42, **common)
    await ChannelMessage.objects.acreate(message_id=2, text="for anyone", **common)
    assert [m.text for m in await sync_to_async(inbox.claim)(api)] == ["for anyone"]
    assert [m.text for m in await sync_to_async(inbox.claim)(web)] == ["for web"]
