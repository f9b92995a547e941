"""From queued events to the emulator's sendMessage, over real HTTP: routing, modes, limits, faults, digests."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from bridge.events.catalog import CATALOG
from bridge.models import BridgeSettings, Delivery, Event, Recipient
from bridge.operations import typed_event
from bridge.pipeline import Pipeline
from bridge.queue import get_queue
from bridge.queue.base import NewEntry
from bridge.telegram.send import build_sender
from tests.emulator_fixtures import TEST_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"
ALICE, BOB, CAROL = 111111, 222222, 333333


@pytest.fixture
def world(folders, emulator):
    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    Recipient.objects.create(chat_id=ALICE, display_name="alice")
    return World(folders.CC_TELEGRAM_EVENTS_DIR, emulator)


class World:
    def __init__(self, events_dir: Path, emulator) -> None:
        self.events_dir = events_dir
        self.emulator = emulator
        self.count = 0

    def drop(self, type_: str = "info_notification", title: str | None = None, **fields) -> str:
        self.count += 1
        title = title or f"event {self.count}"
        body = {"type": type_, "title": title, **fields}
        path = self.events_dir / f"{self.count:05d}.json"
        path.write_text(json.dumps(body))
        return title

    async def run(self) -> None:
        pipeline = Pipeline(sender_factory=build_sender)
        try:
            await pipeline.run_once()
        finally:
            await pipeline.queue.close()

    def texts(self, chat_id: int) -> list[str]:
        return [m["message"]["text"] for m in self.emulator.state.sent_messages(chat_id)]

    def calls(self, method: str) -> list[dict]:
        """The emulator's log of ``method`` calls, over its control API."""
        response = httpx.get(f"{self.emulator.control_url}/calls", params={"method": method})
        response.raise_for_status()
        return response.json()["calls"]

    def control(self, path: str, body: dict) -> dict:
        response = httpx.post(f"{self.emulator.control_url}{path}", json=body)
        response.raise_for_status()
        return response.json()


def tune(**changes) -> None:
    current = BridgeSettings.load()
    for name, value in changes.items():
        setattr(current, name, value)
    current.full_clean()
    current.save()


async def test_every_event_type_is_rendered_and_accepted_by_the_bot_api(world):
    await sync_tune(rate_per_chat_per_second=100, rate_global_per_second=1000, digest_threshold=1000)
    for path in sorted(FIXTURES.glob("*.json")):
        shutil.copy(path, world.events_dir / path.name)
    await world.run()
    texts = world.texts(ALICE)
    assert len(texts) == len(CATALOG) == 47
    assert await Delivery.objects.filter(status="sent").acount() == 47
    assert await Event.objects.filter(status="done").acount() == 47
    assert world.emulator.state.stats()["errors_per_status"] == {}


async def test_events_reach_only_recipients_whose_filters_match(world):
    await Recipient.objects.acreate(chat_id=BOB, display_name="bob", sources="project-b", min_priority=0)
    await Recipient.objects.acreate(chat_id=333, display_name="inactive", active=False)
    await Recipient.objects.acreate(chat_id=444, display_name="builds only", categories=["build_and_test"])
    world.drop("info_notification", "for everyone", source="project-a")
    world.drop("build_failed", "build broke", source="project-b")
    await world.run()
    # build_failed is high priority: it may overtake the notification, so compare without order.
    assert sorted(t.splitlines()[0] for t in world.texts(ALICE)) == ["ℹ️ for everyone", "❌ build broke"]
    assert [t.splitlines()[0] for t in world.texts(BOB)] == ["❌ build broke"]
    assert world.texts(333) == []
    assert [t.splitlines()[0] for t in world.texts(444)] == ["❌ build broke"]


async def test_muted_mode_sends_only_approvals_and_critical_and_records_the_rest_as_suppressed(world):
    await sync_tune(mode="muted")
    world.drop("task_completion", "finished quietly", data={"status": "completed"})
    world.drop("task_progress", "half way", data={"current": 5, "total": 10})
    world.drop("approval_request", "May I deploy?", data={"approval_prompt": "Deploy v2 to production?"})
    world.drop("security_alert", "Leaked key", data={"severity": "critical"})
    await world.run()
    heads = [t.splitlines()[0] for t in world.texts(ALICE)]
    assert len(heads) == 2
    assert any("May I deploy?" in h for h in heads) and any("Leaked key" in h for h in heads)
    suppressed = [
        d.event.title async for d in Delivery.objects.filter(status="suppressed").select_related("event")
    ]
    assert sorted(suppressed) == ["finished quietly", "half way"]


async def test_sends_to_one_chat_never_exceed_the_configured_rate(world):
    await sync_tune(rate_per_chat_per_second=4, digest_threshold=1000)
    world.control("/limits", {"enabled": True, "per_chat_per_second": 4, "per_chat_burst": 1})
    for i in range(12):
        world.drop("info_notification", f"n{i}")
    await world.run()
    stats = world.emulator.state.stats()
    assert len(world.texts(ALICE)) == 12
    assert stats["too_many_requests"] == 0


async def test_a_429_is_waited_out_for_retry_after_and_costs_no_attempt(world):
    world.control("/faults", {"method": "sendMessage", "status": 429, "retry_after": 1, "fail_next": 1})
    world.drop("info_notification", "after the flood")
    started = time.monotonic()
    await world.run()
    assert time.monotonic() - started >= 1.0
    assert [t.splitlines()[0] for t in world.texts(ALICE)] == ["ℹ️ after the flood"]
    delivery = await Delivery.objects.aget()
    assert (delivery.status, delivery.attempts) == ("sent", 1)


async def test_server_errors_are_retried_with_backoff_until_delivered(world):
    await sync_tune(retry_base_delay_ms=20, retry_max_delay_ms=100)
    world.control("/faults", {"method": "sendMessage", "status": 502, "fail_next": 2})
    world.drop("info_notification", "third time lucky")
    await world.run()
    delivery = await Delivery.objects.aget()
    assert (delivery.status, delivery.attempts) == ("sent", 3)
    assert len(world.texts(ALICE)) == 1


async def test_retries_give_up_into_a_dead_letter_with_the_reason(world):
    await sync_tune(retry_attempts=2, retry_base_delay_ms=10, retry_max_delay_ms=100)
    world.control("/faults", {"method": "sendMessage", "status": 500, "fail_next": 10})
    world.drop("info_notification", "never arrives")
    await world.run()
    delivery = await Delivery.objects.aget()
    assert delivery.status == "dead"
    assert delivery.attempts == 3
    assert "Internal Server Error" in delivery.last_error or "500" in delivery.last_error
    assert (await Event.objects.aget()).status == "failed"


async def test_a_blocked_chat_is_dead_lettered_at_once_while_others_still_receive(world):
    await Recipient.objects.acreate(chat_id=BOB, display_name="bob")
    world.control("/chats", {"chat_id": BOB, "status": "blocked"})
    world.drop("info_notification", "hello both")
    await world.run()
    bob = await Delivery.objects.aget(recipient__chat_id=BOB)
    assert (bob.status, bob.attempts) == ("dead", 1)
    assert "blocked" in bob.last_error
    assert len(world.texts(ALICE)) == 1


async def test_a_group_migrated_to_a_supergroup_is_followed(world):
    group, supergroup = -100, -1001234
    await Recipient.objects.acreate(chat_id=group, display_name="team")
    world.control("/chats", {"chat_id": group, "status": "migrated", "migrate_to_chat_id": supergroup})
    world.drop("info_notification", "to the team")
    await world.run()
    assert (await Recipient.objects.aget(display_name="team")).chat_id == supergroup
    assert len(world.texts(supergroup)) == 1
    assert (await Delivery.objects.aget(recipient__display_name="team")).status == "sent"


async def test_a_normal_backlog_is_merged_into_a_digest_and_approvals_jump_the_line(world):
    await sync_tune(rate_per_chat_per_second=2, digest_threshold=5)
    titles = [world.drop("file_modified", f"edited file {i}") for i in range(12)]
    world.drop("approval_request", "Approve the migration?", data={"options": ["Approve", "Deny"]})
    await world.run()
    texts = world.texts(ALICE)
    assert len(texts) < 13
    joined = "\n".join(texts)
    for title in titles:
        assert title in joined
    assert await Delivery.objects.filter(status="digested").acount() >= 5
    approval_position = next(i for i, t in enumerate(texts) if "Approve the migration?" in t)
    assert approval_position <= 1


async def test_a_delivery_recorded_as_sent_is_not_sent_again_when_its_entry_comes_back(world):
    world.drop("info_notification", "only once")
    await world.run()
    assert len(world.calls("sendMessage")) == 1
    assert (await Delivery.objects.aget()).status == "sent"
    # The worker died after recording the send, before its ack (on Redis these are two writes): the queue hands
    # the event's entry out again, to the next worker.
    event = await Event.objects.aget()
    queue = get_queue()
    await queue.enqueue_batch(
        [NewEntry(event.pk, f"{event.event_id}#again", event.priority, typed_event(event).to_json())]
    )
    await queue.close()
    await world.run()
    assert len(world.calls("sendMessage")) == 1
    assert (await Event.objects.aget()).status == "done"
    queue = get_queue()
    assert sum((await queue.depth()).values()) == 0  # the entry that came back was acked
    await queue.close()


async def test_after_a_global_flood_answer_no_chat_is_sent_to_until_retry_after_has_passed(world):
    # The bridge's own limits let Alice have 2 messages a second and the bot far more, so that the emulator's
    # global limit, 2 a second, is what refuses.
    await sync_tune(rate_per_chat_per_second=2, rate_global_per_second=1000, digest_threshold=1000)
    await Recipient.objects.acreate(chat_id=CAROL, display_name="carol", sources="project-c")
    world.control(
        "/limits",
        {"enabled": True, "global_per_second": 2, "per_chat_per_second": 100, "per_chat_burst": 100},
    )
    # Carol's first message reaches the emulator 0.8 s late, after Alice's two of that second (at 0 and 0.55
    # s): refused, though Carol had nothing else sent, so by the bot-wide limit. Alice's third is due at 1.1 s.
    world.control("/faults", {"method": "sendMessage", "chat_id": CAROL, "delay_ms": 800, "fail_next": 1})
    world.drop("info_notification", "for carol too", source="project-c")
    world.drop("info_notification", "alice 1")
    world.drop("info_notification", "alice 2")
    await world.run()
    calls = world.calls("sendMessage")
    refused = [call for call in calls if call["status"] == 429]
    assert refused and refused[0]["params"]["chat_id"] == CAROL
    retry_after = int(refused[0]["description"].rsplit(" ", 1)[1])  # "Too Many Requests: retry after N"
    later = [call for call in calls if call["seq"] > refused[0]["seq"]]
    assert later and all(call["time"] >= refused[0]["time"] + retry_after for call in later)
    assert (len(world.texts(ALICE)), len(world.texts(CAROL))) == (3, 1)


@pytest.mark.parametrize("status", [502, 429])
async def test_a_split_message_whose_second_part_fails_is_resumed_not_sent_again_from_the_start(
    world, status
):
    await sync_tune(retry_base_delay_ms=20, retry_max_delay_ms=100, rate_per_chat_per_second=100)
    # The first part goes through (a 1 ms delay uses up the first rule); the second fails once.
    world.control(
        "/faults",
        {
            "rules": [
                {"method": "sendMessage", "chat_id": ALICE, "delay_ms": 1, "fail_next": 1},
                {
                    "method": "sendMessage",
                    "chat_id": ALICE,
                    "status": status,
                    "retry_after": 1,
                    "fail_next": 1,
                },
            ]
        },
    )
    world.drop("info_notification", "long report", description=LONG)
    await world.run()
    await assert_each_part_received_once(world)
    delivery = await Delivery.objects.aget()
    assert (delivery.status, delivery.attempts) == ("sent", 1 if status == 429 else 2)


async def test_parts_on_the_books_let_the_next_worker_send_only_the_rest(world):
    await sync_tune(rate_per_chat_per_second=100)
    # The second part is refused for 5 s; the worker is stopped meanwhile and hands its entry back. (Shared
    # through Redis, the chat's penalty holds the next worker back too, for the rest of the 5 s.)
    world.control(
        "/faults",
        {
            "rules": [
                {"method": "sendMessage", "chat_id": ALICE, "delay_ms": 1, "fail_next": 1},
                {"method": "sendMessage", "chat_id": ALICE, "status": 429, "retry_after": 5, "fail_next": 1},
            ]
        },
    )
    world.drop("info_notification", "long report", description=LONG)
    pipeline = Pipeline(sender_factory=build_sender)
    await pipeline.start()
    try:
        deadline = time.monotonic() + 10
        while not (delivery := await Delivery.objects.afirst()) or not delivery.message_ids:
            assert time.monotonic() < deadline, "the first part was not recorded"
            await asyncio.sleep(0.02)
    finally:
        await pipeline.stop(timeout=0.1)
    delivery = await Delivery.objects.aget()
    assert (delivery.status, len(delivery.message_ids)) == ("sending", 1)
    await world.run()  # a new worker: it knows only what the database says
    await assert_each_part_received_once(world)
    assert (await Delivery.objects.aget()).status == "sent"


LONG = "\n".join(f"line {i:04d} " + "word " * 20 for i in range(90))  # ~10,000 characters: three parts


async def assert_each_part_received_once(world: World) -> None:
    texts = world.texts(ALICE)
    assert [t.splitlines()[0] for t in texts] == ["(1/3)", "(2/3)", "(3/3)"]
    sent_ids = [m["message"]["message_id"] for m in world.emulator.state.sent_messages(ALICE)]
    assert (await Delivery.objects.aget()).message_ids == sent_ids


async def test_the_breaker_opens_on_repeated_failures_and_closes_after_recovery(world):
    await sync_tune(
        breaker_failure_threshold=3,
        breaker_open_seconds=1,
        breaker_half_open_successes=1,
        retry_attempts=10,
        retry_base_delay_ms=10,
        retry_max_delay_ms=100,
    )
    world.control("/faults", {"method": "sendMessage", "status": 503, "fail_next": 3})
    world.drop("info_notification", "through the storm")
    started = time.monotonic()
    await world.run()
    # Three quick failures open the breaker for a second; the send after it goes through.
    assert time.monotonic() - started >= 1.0
    assert (await Delivery.objects.aget()).status == "sent"


async def sync_tune(**changes) -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(tune)(**changes)
