"""Answers back, over real HTTP against the Bot API emulator: button presses, approvals, replies, commands,
response files, the poller lease and the webhook. Events reach Telegram through the real pipeline; the replies
are driven one step at a time (poll_once, expire_once, retry_once)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from bridge import health
from bridge.models import (
    Approval,
    AuditEntry,
    BridgeSettings,
    Event,
    PollerState,
    Recipient,
    Response,
    SessionGrant,
)
from bridge.pipeline import Pipeline
from bridge.replies import approvals
from bridge.replies.inbound import ButtonPress, Sender
from bridge.replies.lease import DatabaseLease, RedisLease
from bridge.replies.service import Replies, bot_id_of
from bridge.telegram.send import build_sender
from bridge.telegram.transport import TelegramTransport
from tests.emulator_fixtures import TEST_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)

ALICE, BOB, CAROL, MALLORY = 111111, 222222, 333333, 666666
BOT_ID = bot_id_of(TEST_TOKEN)
CALLBACK_FIELDS = {
    "timestamp",
    "user_id",
    "username",
    "first_name",
    "callback_data",
    "original_message_id",
    "response_type",
    "event_id",
    "task_id",
    "decision",
}


def person(user_id: int, name: str) -> dict:
    return {"id": user_id, "username": name, "first_name": name.title()}


class World:
    def __init__(self, settings, emulator) -> None:
        self.settings = settings
        self.emulator = emulator
        self.count = 0
        self.started: list[Replies] = []

    @property
    def responses_dir(self) -> Path:
        return Path(self.settings.CC_TELEGRAM_RESPONSES_DIR)

    def drop(self, type_: str, title: str, **fields) -> None:
        self.count += 1
        body = {"type": type_, "title": title, **fields}
        (Path(self.settings.CC_TELEGRAM_EVENTS_DIR) / f"{self.count:05d}.json").write_text(json.dumps(body))

    async def deliver(self) -> None:
        pipeline = Pipeline(sender_factory=build_sender)
        try:
            await pipeline.run_once()
        finally:
            await pipeline.queue.close()

    async def replies(self, name: str = "worker-1", lease=None) -> Replies:
        """A worker's replies on their own Bot API client, writer running, driven step by step."""
        transport = TelegramTransport(TEST_TOKEN, base_url=self.emulator.base_url)
        await transport.start()
        replies = Replies(transport, name=name, bot_id=BOT_ID, lease=lease)
        replies.apply(await sync_to_async(BridgeSettings.load)())
        replies.writer.start()
        self.started.append(replies)
        return replies

    def last(self, chat_id: int) -> dict:
        return self.emulator.state.last_message(chat_id)

    def press(
        self, chat_id: int, data: str, *, user: dict | None = None, message_id: int | None = None
    ) -> None:
        message_id = message_id or self.last(chat_id)["message_id"]
        self.emulator.press(chat_id, message_id, data, user=user or person(chat_id, f"u{chat_id}"))

    def files(self, prefix: str = "telegram_") -> dict[str, dict]:
        return {
            p.name: json.loads(p.read_text())
            for p in sorted(self.responses_dir.glob(f"{prefix}*.json"))
            if not p.name.startswith(".")
        }

    def answers(self) -> list[dict]:
        return self.emulator.state.answered_callbacks()


@pytest_asyncio.fixture
async def world(folders, emulator):
    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    await Recipient.objects.acreate(chat_id=ALICE, display_name="alice")
    await Recipient.objects.acreate(chat_id=BOB, display_name="bob")
    await Recipient.objects.acreate(chat_id=CAROL, display_name="carol", role=Recipient.Role.VIEWER)
    world = World(folders, emulator)
    yield world
    for replies in world.started:
        await replies.stop()
        await replies.transport.close()


async def tune(**changes) -> None:
    def apply() -> None:
        current = BridgeSettings.load()
        for name, value in changes.items():
            setattr(current, name, value)
        current.full_clean()
        current.save()

    await sync_to_async(apply)()


async def approval_sent(world: World, task_id: str = "deploy-1", **data) -> None:
    world.drop(
        "approval_request",
        "Deploy to production?",
        task_id=task_id,
        data={"approval_prompt": "Deploy v2 to production?", **data},
    )
    await world.deliver()


def has_keyboard(message: dict) -> bool:
    return bool(message.get("reply_markup", {}).get("inline_keyboard"))


# --- approvals ----------------------------------------------------------------------------------------------------
async def test_an_approve_press_decides_edits_every_copy_and_writes_the_response_file(world):
    await approval_sent(world)
    alice_message = world.last(ALICE)
    buttons = [b["callback_data"] for row in alice_message["reply_markup"]["inline_keyboard"] for b in row]
    assert "approve_deploy-1" in buttons and "deny_deploy-1" in buttons
    world.press(ALICE, "approve_deploy-1", user=person(ALICE, "alice"))

    replies = await world.replies()
    result = await replies.poll_once(timeout=0)

    assert (result.state, result.handled) == ("polled", 1)
    approval = await Approval.objects.select_related("event").aget()
    assert (approval.status, approval.decided_by, approval.decided_by_name) == ("approved", ALICE, "@alice")
    response = await Response.objects.aget()
    assert (response.kind, response.decision, response.task_id) == ("callback_query", "approved", "deploy-1")
    assert response.original_message_id == alice_message["message_id"]
    assert response.file_error == "" and response.file_name.startswith(f"telegram_callback_{ALICE}_")
    content = world.files()[response.file_name]
    assert set(content) == CALLBACK_FIELDS
    assert content == {
        **content,
        "user_id": ALICE,
        "username": "alice",
        "first_name": "Alice",
        "callback_data": "approve_deploy-1",
        "original_message_id": alice_message["message_id"],
        "response_type": "callback_query",
        "event_id": approval.event.event_id,
        "task_id": "deploy-1",
        "decision": "approved",
    }
    for chat_id in (ALICE, BOB):
        message = world.last(chat_id)
        assert not has_keyboard(message)
        assert "Approved by @alice" in message["text"]
    assert [(a["callback_query_id"] is not None, a["text"]) for a in world.answers()] == [
        (True, "✅ Approved")
    ]


async def test_a_deny_press_denies_and_tells_the_agent(world):
    await approval_sent(world)
    world.press(BOB, "deny_deploy-1", user=person(BOB, "bob"))
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    assert (await Approval.objects.aget()).status == "denied"
    (content,) = world.files().values()
    assert (content["decision"], content["user_id"]) == ("denied", BOB)
    assert "Denied by @bob" in world.last(ALICE)["text"]


async def test_a_stranger_pressing_gets_an_alert_and_an_audit_entry_and_decides_nothing(world):
    await approval_sent(world)
    world.press(ALICE, "approve_deploy-1", user=person(MALLORY, "mallory"))
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    (answer,) = world.answers()
    assert (answer["text"], answer["show_alert"]) == ("You are not allowed to answer this bot", True)
    assert (await Approval.objects.aget()).status == "pending"
    assert await AuditEntry.objects.filter(action="access.refused", actor=f"telegram:{MALLORY}").aexists()
    assert not await Response.objects.aexists() and world.files() == {}
    assert has_keyboard(world.last(ALICE))


async def test_a_viewer_is_told_only_approvers_decide(world):
    await approval_sent(world)
    world.press(CAROL, "approve_deploy-1", user=person(CAROL, "carol"))
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    (answer,) = world.answers()
    assert answer["show_alert"] and "Only approvers" in answer["text"]
    assert (await Approval.objects.aget()).status == "pending"
    assert await AuditEntry.objects.filter(action="access.refused", actor=f"telegram:{CAROL}").aexists()


async def test_a_second_press_is_told_it_was_already_decided(world):
    await approval_sent(world)
    message_id = world.last(ALICE)["message_id"]
    replies = await world.replies()
    world.press(ALICE, "approve_deploy-1", user=person(ALICE, "alice"), message_id=message_id)
    await replies.poll_once(timeout=0)
    world.press(ALICE, "deny_deploy-1", user=person(ALICE, "alice"), message_id=message_id)
    await replies.poll_once(timeout=0)
    _, second = world.answers()
    assert second["text"].startswith("Already decided: approved by @alice at ")
    assert (await Approval.objects.aget()).status == "approved"
    assert await Response.objects.acount() == 1


async def test_simultaneous_presses_from_two_approvers_decide_exactly_once(world):
    await approval_sent(world)
    world.press(ALICE, "approve_deploy-1", user=person(ALICE, "alice"))
    world.press(BOB, "deny_deploy-1", user=person(BOB, "bob"))
    replies = await world.replies()
    result = await replies.poll_once(timeout=0)  # one batch: both chats handled concurrently
    assert result.handled == 2
    approval = await Approval.objects.aget()
    assert approval.status in ("approved", "denied")
    texts = sorted(a["text"] for a in world.answers())
    assert len(texts) == 2 and sum(t.startswith("Already decided") for t in texts) == 1
    assert await Response.objects.acount() == 1 and len(world.files()) == 1


def test_two_workers_deciding_at_the_same_instant_cannot_both_win(world):
    """The database, not the event loop, guarantees it: two threads, two connections, one row changes."""
    asyncio.run(approval_sent(world))
    approval = Approval.objects.get()
    barrier = threading.Barrier(2)
    outcomes = []

    def press(user_id: int, action: str) -> None:
        press = ButtonPress(
            user_id, str(user_id), Sender(user_id, f"u{user_id}"), f"{action}_deploy-1", user_id, 1
        )
        barrier.wait()
        try:
            outcomes.append(approvals.decide(approval.pk, action, action, press, 3600).won)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=press, args=a) for a in ((ALICE, "approve"), (BOB, "deny"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, True]
    assert Response.objects.count() == 1


async def test_callback_data_copied_onto_another_message_decides_nothing(world):
    world.drop("info_notification", "Hello")
    await world.deliver()
    other_message = world.last(ALICE)["message_id"]
    await approval_sent(world)
    world.press(ALICE, "approve_deploy-1", user=person(ALICE, "alice"), message_id=other_message)
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    (answer,) = world.answers()
    assert answer["show_alert"] and "does not belong" in answer["text"]
    assert (await Approval.objects.aget()).status == "pending"
    assert await AuditEntry.objects.filter(action="access.refused", actor=f"telegram:{ALICE}").aexists()


async def test_allow_for_this_session_approves_and_grants_the_tool_to_the_session(world):
    await approval_sent(world, metadata={"hook_session_id": "sess-42", "tool_name": "Bash"})
    assert "always_deploy-1" in json.dumps(world.last(ALICE)["reply_markup"])
    world.press(ALICE, "always_deploy-1", user=person(ALICE, "alice"))
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    assert (await Approval.objects.aget()).status == "approved"
    grant = await SessionGrant.objects.aget()
    assert (grant.session_id, grant.tool_name, grant.granted_by) == ("sess-42", "Bash", ALICE)
    assert timedelta(minutes=59) < grant.expires_at - timezone.now() <= timedelta(hours=1)
    (content,) = world.files().values()
    assert (content["decision"], content["callback_data"]) == ("approved", "always_deploy-1")
    assert "Allowed for this session by @alice" in world.last(BOB)["text"]


async def test_an_unanswered_approval_expires_its_messages_and_writes_a_timeout_response(world):
    await approval_sent(world)
    await Approval.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    replies = await world.replies()
    assert await replies.expire_once() == 1
    assert await replies.expire_once() == 0  # closed once, however many sweeps (or workers) come by
    await replies.writer.flush()
    approval = await Approval.objects.select_related("event").aget()
    assert approval.status == "expired"
    for chat_id in (ALICE, BOB):
        assert "Expired" in world.last(chat_id)["text"] and not has_keyboard(world.last(chat_id))
    (content,) = world.files().values()
    assert (content["decision"], content["event_id"], content["task_id"]) == (
        "timeout",
        approval.event.event_id,
        "deploy-1",
    )
    # A press arriving after that is told so.
    world.press(ALICE, "approve_deploy-1", user=person(ALICE, "alice"))
    await replies.poll_once(timeout=0)
    assert world.answers()[-1]["text"].startswith("Already closed: expired")


async def test_a_press_after_the_deadline_but_before_the_sweep_expires_the_approval(world):
    await approval_sent(world)
    await Approval.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    world.press(ALICE, "approve_deploy-1", user=person(ALICE, "alice"))
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    assert (await Approval.objects.aget()).status == "expired"
    assert "expired" in world.answers()[-1]["text"]
    assert [c["decision"] for c in world.files().values()] == ["timeout"]


async def test_wait_for_decision_returns_as_soon_as_the_approval_is_decided(world):
    await approval_sent(world)
    event_id = (await Event.objects.aget()).event_id
    pending = await sync_to_async(approvals.decision_for)(event_id=event_id)
    assert pending.pending
    waiting = asyncio.create_task(approvals.wait_for_decision(task_id="deploy-1", timeout=10))
    world.press(BOB, "approve_deploy-1", user=person(BOB, "bob"))
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    decision = await asyncio.wait_for(waiting, 5)
    assert (decision.status, decision.decided_by, decision.event_id) == ("approved", BOB, event_id)
    assert await approvals.wait_for_decision(event_id="no-such-event", timeout=0.05) is None


# --- completions, replies, commands --------------------------------------------------------------------------------
async def test_acknowledge_and_details_on_a_completion_are_written_for_the_agent(world):
    world.drop("task_completion", "Refactor done", task_id="refactor-7", data={"status": "completed"})
    await world.deliver()
    message_id = world.last(ALICE)["message_id"]
    world.press(ALICE, "ack_refactor-7", user=person(ALICE, "alice"), message_id=message_id)
    world.press(ALICE, "details_refactor-7", user=person(ALICE, "alice"), message_id=message_id)
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    decisions = sorted(c["decision"] for c in world.files().values())
    assert decisions == ["acknowledged", "details"]
    assert [a["text"] for a in world.answers()] == ["👍 Acknowledged", "📄 Details below"]
    details = world.last(ALICE)
    assert details["message_id"] != message_id and "Refactor done" in details["text"]


async def test_a_text_reply_is_written_as_a_response_file_and_acknowledged_with_lightning(world):
    world.drop("task_completion", "Tests written", task_id="tests-3")
    await world.deliver()
    asked = world.last(ALICE)["message_id"]
    said = world.emulator.say(
        ALICE, "please also run the linter", user=person(ALICE, "alice"), reply_to_message_id=asked
    )
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    ((name, content),) = world.files("telegram_response_").items()
    assert name.startswith(f"telegram_response_{ALICE}_")
    event = await Event.objects.aget()
    assert content == {
        **content,
        "user_id": ALICE,
        "username": "alice",
        "first_name": "Alice",
        "message_text": "please also run the linter",
        "message_type": "text",
        "event_id": event.event_id,
        "task_id": "tests-3",
    }
    reaction = world.emulator.state.reactions[-1]
    assert (reaction["message_id"], reaction["reaction"][0]["emoji"]) == (said["message"]["message_id"], "⚡")
    assert (await Response.objects.aget()).file_name == name


async def test_in_nomad_mode_a_reply_is_answered_with_the_menu(world):
    await tune(mode="nomad")
    await approval_sent(world)
    world.emulator.say(ALICE, "how is it going?", user=person(ALICE, "alice"))
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    menu = world.last(ALICE)["text"]
    assert "Passed to the agent" in menu and "1 pending approval" in menu and "Deploy to production?" in menu
    assert len(world.files("telegram_response_")) == 1


async def test_strangers_messages_are_ignored_and_audited(world):
    world.emulator.say(MALLORY, "let me in", user=person(MALLORY, "mallory"))
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    assert world.last(MALLORY) is None and world.files() == {}
    assert await AuditEntry.objects.filter(action="access.refused", actor=f"telegram:{MALLORY}").aexists()


async def test_bridge_command_summarises_the_status_and_is_no_response(world):
    await approval_sent(world)
    world.emulator.say(ALICE, "/bridge", user=person(ALICE, "alice"))
    replies = await world.replies()
    await replies.poll_once(timeout=0)
    text = world.last(ALICE)["text"]
    assert "Mode: local" in text and "Pending approvals: 1" in text and "Queue:" in text
    assert "Last delivery:" in text and "none yet" not in text
    assert world.files("telegram_response_") == {}


async def test_start_and_help_answer(world):
    replies = await world.replies()
    world.emulator.say(BOB, "/start", user=person(BOB, "bob"))
    await replies.poll_once(timeout=0)
    assert "running" in world.last(BOB)["text"]
    world.emulator.say(BOB, "/help", user=person(BOB, "bob"))
    await replies.poll_once(timeout=0)
    assert "/cct:mute" in world.last(BOB)["text"]


async def test_mode_commands_switch_the_mode_for_approvers_only(world):
    replies = await world.replies()
    world.emulator.say(CAROL, "/cct:mute", user=person(CAROL, "carol"))
    await replies.poll_once(timeout=0)
    assert (await BridgeSettings.objects.aget()).mode == "local"
    assert "Only approvers" in world.last(CAROL)["text"]
    world.emulator.say(ALICE, "/cct:mute", user=person(ALICE, "alice"))
    await replies.poll_once(timeout=0)
    assert (await BridgeSettings.objects.aget()).mode == "muted"
    assert "Muted" in world.last(ALICE)["text"]
    assert await AuditEntry.objects.filter(action="settings.change", actor=f"telegram:{ALICE}").aexists()
    world.emulator.say(ALICE, "/cct:nomad", user=person(ALICE, "alice"))
    await replies.poll_once(timeout=0)
    assert (await BridgeSettings.objects.aget()).mode == "nomad"


# --- response files -------------------------------------------------------------------------------------------------
async def test_fifty_presses_within_a_second_get_fifty_distinct_files(world):
    await tune(rate_per_chat_per_second=100, rate_global_per_second=1000, digest_threshold=1000)
    for i in range(50):
        world.drop("task_completion", f"task {i}", task_id=f"t{i}")
    await world.deliver()
    sent = world.emulator.state.sent_messages(ALICE)
    assert len(sent) == 50
    for record in sent:
        data = record["message"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        world.press(ALICE, data, user=person(ALICE, "alice"), message_id=record["message"]["message_id"])
    replies = await world.replies()
    result = await replies.poll_once(timeout=0)
    assert result.handled == 50
    files = world.files()
    assert len(files) == 50
    assert sorted(c["callback_data"] for c in files.values()) == sorted(f"ack_t{i}" for i in range(50))
    names = {name async for name in Response.objects.values_list("file_name", flat=True)}
    assert names == set(files)
    assert not [p for p in world.responses_dir.iterdir() if p.name.startswith(".")]


async def test_an_unwritable_folder_keeps_the_response_and_it_is_written_once_the_folder_is_back(
    world, tmp_path, caplog
):
    world.drop("task_completion", "Done", task_id="done-1")
    await world.deliver()
    good = world.settings.CC_TELEGRAM_RESPONSES_DIR
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    world.settings.CC_TELEGRAM_RESPONSES_DIR = blocker / "responses"
    world.press(ALICE, "ack_done-1", user=person(ALICE, "alice"))
    replies = await world.replies()
    with caplog.at_level(logging.ERROR, logger="bridge.replies.response_files"):
        await replies.poll_once(timeout=0)
    response = await Response.objects.aget()
    assert response.file_name == "" and "cannot create" in response.file_error
    assert "kept in the database" in caplog.text
    assert await replies.retry_once() == 1  # still unwritable: kept
    world.settings.CC_TELEGRAM_RESPONSES_DIR = good
    assert await replies.retry_once() == 1
    await response.arefresh_from_db()
    assert response.file_error == "" and response.file_name in world.files()
    assert await replies.retry_once() == 0


# --- the poller -----------------------------------------------------------------------------------------------------
def leases(kind: str, redis_url: str | None, key_prefix: str, ttl: float = 15.0):
    if kind == "redis":
        key = f"{key_prefix}:poller:{BOT_ID}"
        return RedisLease(redis_url, key, "worker-a", ttl=ttl), RedisLease(
            redis_url, key, "worker-b", ttl=ttl
        )
    return DatabaseLease(BOT_ID, "worker-a", ttl=ttl), DatabaseLease(BOT_ID, "worker-b", ttl=ttl)


@pytest.mark.parametrize("kind", ["database", "redis"])
async def test_only_the_lease_holder_polls_and_a_standby_takes_over_when_it_stops(
    world, request, key_prefix, kind
):
    redis_url = request.getfixturevalue("redis_url") if kind == "redis" else None
    lease_a, lease_b = leases(kind, redis_url, key_prefix)
    first = await world.replies("worker-a", lease_a)
    second = await world.replies("worker-b", lease_b)
    world.emulator.say(ALICE, "one", user=person(ALICE, "alice"))
    assert (await first.poll_once(timeout=0)).state == "polled"
    assert (await second.poll_once(timeout=0)).state == "standby"
    assert len(world.emulator.state.call_log("getUpdates")) == 1
    await first.poller.release()
    world.emulator.say(ALICE, "two", user=person(ALICE, "alice"))
    assert (await second.poll_once(timeout=0)).state == "polled"
    assert (await first.poll_once(timeout=0)).state == "standby"
    calls = world.emulator.state.call_log("getUpdates")
    assert len(calls) == 2 and all(c["status"] == 200 for c in calls)
    assert sorted([r async for r in Response.objects.values_list("message_text", flat=True)]) == [
        "one",
        "two",
    ]
    assert (await PollerState.objects.aget()).holder == "worker-b"


@pytest.mark.parametrize("kind", ["database", "redis"])
async def test_a_standby_takes_over_from_a_holder_that_died(world, request, key_prefix, kind):
    redis_url = request.getfixturevalue("redis_url") if kind == "redis" else None
    lease_a, lease_b = leases(kind, redis_url, key_prefix, ttl=0.3)
    first = await world.replies("worker-a", lease_a)
    second = await world.replies("worker-b", lease_b)
    assert (await first.poll_once(timeout=0)).state == "polled"
    assert (await second.poll_once(timeout=0)).state == "standby"
    await asyncio.sleep(0.4)  # worker-a stopped renewing: crashed
    assert (await second.poll_once(timeout=0)).state == "polled"
    assert (await first.poll_once(timeout=0)).state == "standby"


async def test_the_offset_survives_a_restart_and_a_repeated_update_is_handled_once(world):
    world.emulator.say(ALICE, "only once", user=person(ALICE, "alice"))
    replies = await world.replies("worker-a")
    await replies.poll_once(timeout=0)
    assert (await PollerState.objects.aget()).next_offset > 1
    # The worker died after handling but before its offset was stored: Telegram sends the update again.
    await PollerState.objects.aupdate(next_offset=0)
    await replies.poller.release()
    restarted = await world.replies("worker-b")
    await restarted.poll_once(timeout=0)
    assert await Response.objects.acount() == 1 and len(world.files()) == 1
    # Stored again, so a further restart starts after it and Telegram forgets it.
    await restarted.poll_once(timeout=0)
    assert world.emulator.state.stats()["pending_updates"] == 0


async def test_a_409_conflict_is_logged_audited_and_reported_by_health(world, emulator_bot, caplog):
    replies = await world.replies()
    generation = world.emulator.state.poll_generation
    with caplog.at_level(logging.ERROR, logger="bridge.replies.updates"):
        polling = asyncio.create_task(replies.poll_once(timeout=3))
        while world.emulator.state.poll_generation == generation:
            await asyncio.sleep(0.01)
        await emulator_bot.get_updates(timeout=0)  # someone else polls the same token
        result = await polling
    assert result.state == "conflict"
    assert "conflict" in caplog.text and "409" in caplog.text
    assert await AuditEntry.objects.filter(action="poller.conflict").aexists()
    report = await sync_to_async(health.check)()
    assert report.poller["problem"].startswith("conflict")
    assert any(p.startswith("receiving updates: conflict") for p in report.problems)
    assert report.status != "healthy"


# --- webhook --------------------------------------------------------------------------------------------------------
async def test_the_webhook_handles_an_update_only_with_the_right_secret(world, async_client):
    world.settings.TELEGRAM_WEBHOOK_SECRET = "hook-secret_1"
    await approval_sent(world)
    update = world.emulator.press(
        ALICE, world.last(ALICE)["message_id"], "approve_deploy-1", user=person(ALICE, "alice")
    )["update"]
    url, header = "/telegram/webhook/hook-secret_1", "X-Telegram-Bot-Api-Secret-Token"
    wrong_path = await async_client.post(
        "/telegram/webhook/wrong", update, content_type="application/json", headers={header: "hook-secret_1"}
    )
    wrong_header = await async_client.post(
        url, update, content_type="application/json", headers={header: "nope"}
    )
    no_header = await async_client.post(url, update, content_type="application/json")
    assert [r.status_code for r in (wrong_path, wrong_header, no_header)] == [403, 403, 403]
    assert (await Approval.objects.aget()).status == "pending"
    right = await async_client.post(
        url, update, content_type="application/json", headers={header: "hook-secret_1"}
    )
    assert right.status_code == 200
    assert (await Approval.objects.aget()).status == "approved"
    assert [a["text"] for a in world.answers()] == ["✅ Approved"]
    assert not has_keyboard(world.last(BOB))
    again = await async_client.post(
        url, update, content_type="application/json", headers={header: "hook-secret_1"}
    )
    assert again.status_code == 200 and await Response.objects.acount() == 1  # Telegram's retry: handled once


async def test_webhook_mode_registers_the_webhook_and_telegram_delivers_to_it(world, live_server):
    world.settings.TELEGRAM_WEBHOOK_SECRET = "hook-secret_2"
    world.settings.TELEGRAM_WEBHOOK_URL = live_server.url
    await tune(updates_mode="webhook")
    await approval_sent(world)
    replies = await world.replies()
    assert await replies.ensure_webhook()
    assert world.emulator.state.webhook.url == f"{live_server.url}/telegram/webhook/hook-secret_2"
    world.press(ALICE, "approve_deploy-1", user=person(ALICE, "alice"))
    for _ in range(500):
        if world.answers():
            break
        await asyncio.sleep(0.01)
    assert [a["text"] for a in world.answers()] == ["✅ Approved"]
    assert (await Approval.objects.aget()).status == "approved"
    assert len(world.files()) == 1


# --- the worker -----------------------------------------------------------------------------------------------------
async def test_a_running_worker_hears_a_press_and_writes_the_decision(world):
    from bridge.worker import WorkerHost

    host = WorkerHost(Pipeline(sender_factory=build_sender))
    await host.start()
    try:
        world.drop("approval_request", "Ship it?", task_id="ship-1")
        for _ in range(500):
            if world.last(ALICE) is not None and world.last(BOB) is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the sender binds the messages to the approval right after sending
        world.press(BOB, "approve_ship-1", user=person(BOB, "bob"))
        for _ in range(500):
            if world.files():
                break
            await asyncio.sleep(0.01)
        (content,) = world.files().values()
        assert (content["decision"], content["task_id"]) == ("approved", "ship-1")
    finally:
        await host.stop()
    assert (await PollerState.objects.aget()).holder == ""  # released on a clean stop
