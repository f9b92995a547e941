"""Routing: each event goes to the active recipients whose filters match, minimum priority included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.events.priority import Priority
from bridge.events.schema import Event
from bridge.models import Delivery, Recipient
from bridge.routing import Target
from tests.emulator_fixtures import TEST_TOKEN
from tests.test_delivery import World

ALICE, BOB = 111111, 222222


@pytest.fixture
def world(folders, emulator):
    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    return World(folders.CC_TELEGRAM_EVENTS_DIR, emulator)


@pytest.mark.django_db(transaction=True)
async def test_a_high_minimum_priority_lets_through_only_events_at_or_above_it(world):
    await Recipient.objects.acreate(chat_id=ALICE, display_name="alice")  # minimum: low
    await Recipient.objects.acreate(chat_id=BOB, display_name="bob", min_priority=Priority.HIGH)
    world.drop("info_notification", "routine note")
    world.drop("security_alert", "leaked key", data={"severity": "critical"})
    await world.run()

    assert sorted(t.splitlines()[0] for t in world.texts(ALICE)) == ["ℹ️ routine note", "🔒 leaked key"]
    assert [t.splitlines()[0] for t in world.texts(BOB)] == ["🔒 leaked key"]
    # Below the threshold is not a suppressed delivery: there is no delivery at all.
    bob = [
        d.event.title async for d in Delivery.objects.filter(recipient__chat_id=BOB).select_related("event")
    ]
    assert bob == ["leaked key"]


def event(type_: str, **data) -> Event:
    return Event(event_id=type_, type=type_, title=type_, timestamp=datetime.now(UTC), data=data)


def target(min_priority: Priority) -> Target:
    return Target(pk=1, chat_id=1, role="approver", sources=(), categories=(), min_priority=int(min_priority))


def test_the_threshold_is_inclusive_and_approvals_pass_any_threshold():
    high = target(Priority.HIGH)
    assert high.wants(event("build_failed"))  # high priority: at the threshold
    assert not high.wants(event("info_notification"))
    assert not high.wants(event("info_notification", priority="low"))
    assert target(Priority.URGENT).wants(event("approval_request", priority="low"))
