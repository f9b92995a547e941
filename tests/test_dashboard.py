"""The live dashboard: the websocket consumer behind login, the figures of the last hour, the delivery feed, and a
worker publishing what it sends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from bridge.consumers import DASHBOARD_GROUP, UNAUTHORIZED, DashboardConsumer
from bridge.dashboard import feed, stats
from bridge.dashboard.samples import Sampler
from bridge.models import Delivery, Event, Recipient, Worker, WorkerSample
from bridge.pipeline import Pipeline
from bridge.telegram.send import build_sender
from bridge.worker import WorkerHost
from tests.emulator_fixtures import TEST_TOKEN

ALICE = 111111
ORIGIN = (b"origin", b"http://localhost")


def application():
    from cctelegram.asgi import application

    return application


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = (
        f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"
    )
    return [ORIGIN, (b"cookie", cookie.encode())]


async def receive_type(communicator: WebsocketCommunicator, kind: str, timeout: float = 5.0) -> dict:
    """The next message of ``kind``, skipping others (periodic stats may come in between)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        message = await communicator.receive_json_from(
            timeout=max(0.01, deadline - asyncio.get_running_loop().time())
        )
        if message["type"] == kind:
            return message


# --- the consumer ---------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_anonymous_websocket_is_refused_at_the_handshake():
    communicator = WebsocketCommunicator(application(), "/ws/dashboard/", headers=[ORIGIN])
    connected, code = await communicator.connect()
    assert (connected, code) == (False, UNAUTHORIZED)


@pytest.mark.django_db(transaction=True)
async def test_staff_only_even_when_logged_in():
    clerk = await sync_to_async(get_user_model().objects.create_user)("clerk", password="x", is_staff=False)
    headers = await sync_to_async(session_headers)(clerk)
    communicator = WebsocketCommunicator(application(), "/ws/dashboard/", headers=headers)
    connected, code = await communicator.connect()
    assert (connected, code) == (False, UNAUTHORIZED)


@pytest.mark.django_db(transaction=True)
async def test_logged_in_staff_gets_history_stats_and_live_deliveries(monkeypatch):
    monkeypatch.setattr(DashboardConsumer, "stats_seconds", 0.2)
    admin = await sync_to_async(get_user_model().objects.create_superuser)("boss", password="x")
    recipient = await Recipient.objects.acreate(chat_id=ALICE)
    event = await Event.objects.acreate(
        event_id="e1",
        type="build_completed",
        category="build_and_test",
        title="Built",
        timestamp=timezone.now(),
    )
    await Delivery.objects.acreate(
        event=event, recipient=recipient, status="sent", sent_at=timezone.now(), latency_ms=12.5
    )
    headers = await sync_to_async(session_headers)(admin)
    communicator = WebsocketCommunicator(application(), "/ws/dashboard/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    try:
        history = await receive_type(communicator, "history")
        assert [(i["title"], i["status"], i["latency_ms"]) for i in history["items"]] == [
            ("Built", "sent", 12.5)
        ]
        full = await receive_type(communicator, "stats")
        assert not full["partial"]
        assert len(full["buckets"]) == stats.WINDOW_SECONDS // stats.BUCKET_SECONDS
        assert full["summary"]["sent"] == 1 and full["summary"]["p50"] == 12.5

        item = {"event_id": "e2", "type": "x", "title": "<b>hi</b>", "chat_id": ALICE, "status": "sent"}
        await get_channel_layer().group_send(DASHBOARD_GROUP, {"type": "deliveries", "items": [item]})
        live = await receive_type(communicator, "deliveries")
        assert live["items"] == [item]

        change = {"knob": "compression_level", "old": 9, "new": 3, "reason": "p99 over target"}
        tuned = {"type": "tuner", "actor": "auto-tuner", "version": 7, "changes": [change]}
        await get_channel_layer().group_send(DASHBOARD_GROUP, tuned)
        assert await receive_type(communicator, "tuner") == tuned

        tail = await receive_type(communicator, "stats")
        assert tail["partial"]
        assert len(tail["buckets"]) == stats.TAIL_SECONDS // stats.BUCKET_SECONDS + 1
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_consumer_accepts_a_user_in_scope_directly():
    """Without the auth middleware (as another ASGI stack might mount it): the scope's user decides."""
    admin = await sync_to_async(get_user_model().objects.create_superuser)("boss2", password="x")
    communicator = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/dashboard/")
    communicator.scope["user"] = admin
    connected, _ = await communicator.connect()
    assert connected
    await receive_type(communicator, "stats")
    await communicator.disconnect()


# --- the figures ----------------------------------------------------------------------------------------------
def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


@pytest.mark.django_db
def test_snapshot_buckets_throughput_latency_errors_and_worker_samples():
    now = 1_800_000_005.0  # 5 s into a bucket
    bucket = 1_800_000_000
    recipient = Recipient.objects.create(chat_id=ALICE)
    for n, latency in enumerate([10.0, 20.0, 30.0, 1000.0]):
        event = Event.objects.create(
            event_id=f"e{n}", type="x", category="custom", title="t", timestamp=at(now)
        )
        Delivery.objects.create(
            event=event, recipient=recipient, status="sent", sent_at=at(bucket + 1), latency_ms=latency
        )
    failed = Event.objects.create(event_id="f", type="x", category="custom", title="t", timestamp=at(now))
    dead = Delivery.objects.create(event=failed, recipient=recipient, status="dead")
    Delivery.objects.filter(pk=dead.pk).update(updated_at=at(bucket + 2))
    WorkerSample.objects.create(
        worker="a", at=at(bucket + 1), queue_depth=5, memory_mb=100, cache_hits=1, cache_lookups=2
    )
    WorkerSample.objects.create(
        worker="a", at=at(bucket + 3), queue_depth=7, memory_mb=110, cache_hits=2, cache_lookups=2
    )
    WorkerSample.objects.create(
        worker="b", at=at(bucket + 4), queue_depth=1, memory_mb=50, cache_hits=0, cache_lookups=0
    )
    WorkerSample.objects.create(
        worker="a", at=at(bucket - 20), queue_depth=99, memory_mb=1, cache_hits=0, cache_lookups=0
    )

    snapshot = stats.snapshot(now=now)
    by_time = {b["t"]: b for b in snapshot["buckets"]}
    latest = by_time[bucket]
    assert (latest["sent"], latest["failed"], latest["p50"], latest["p99"]) == (4, 1, 20.0, 1000.0)
    assert latest["error_rate"] == 20.0
    # The last sample of each worker in the bucket, summed over workers.
    assert (latest["queue_depth"], latest["memory_mb"]) == (8, 160.0)
    assert latest["cache_hit_rate"] == 75.0
    assert by_time[bucket - 20]["queue_depth"] == 99
    quiet = by_time[bucket - 10]
    assert (quiet["sent"], quiet["p50"], quiet["error_rate"], quiet["queue_depth"]) == (0, None, None, None)
    assert min(by_time) == bucket - stats.WINDOW_SECONDS + stats.BUCKET_SECONDS
    tail = stats.snapshot(now=now, tail=True)
    assert tail["buckets"][0]["t"] == bucket - stats.TAIL_SECONDS
    assert tail["partial"] is True


def test_percentile_is_nearest_rank():
    values = sorted(float(v) for v in range(1, 101))
    assert (stats.percentile(values, 0.5), stats.percentile(values, 0.99)) == (50.0, 99.0)
    assert stats.percentile([], 0.5) is None
    assert stats.percentile([7.0], 0.99) == 7.0


@pytest.mark.django_db
def test_sampler_records_cache_lookups_since_the_previous_sample_and_prunes_old_ones():
    sampler = Sampler("w", every=0)
    WorkerSample.objects.create(worker="w", at=timezone.now() - timedelta(hours=3))
    first = sampler.record(3, 80.0, {"l1_hit": 8, "l1_miss": 2, "l2_hit": 1, "l2_miss": 1})
    second = sampler.record(4, 81.0, {"l1_hit": 10, "l1_miss": 4, "l2_hit": 2, "l2_miss": 2})
    assert (first.cache_hits, first.cache_lookups) == (9, 10)
    assert (second.cache_hits, second.cache_lookups) == (3, 4)
    assert WorkerSample.objects.count() == 2
    every_ten = Sampler("x")
    assert every_ten.due()  # a new worker samples at once
    every_ten.record(0, 1.0, None)
    assert not every_ten.due()


@pytest.mark.django_db
def test_feed_items_get_their_titles_in_one_query(django_assert_num_queries):
    for n in range(3):
        Event.objects.create(
            event_id=f"e{n}", type="x", category="custom", title=f"T{n}", timestamp=timezone.now()
        )
    items = [{"event_id": f"e{n}", "status": "sent"} for n in range(3)] + [
        {"event_id": "gone", "status": "dead"}
    ]
    with django_assert_num_queries(1):
        feed.add_titles(items)
    assert [i["title"] for i in items] == ["T0", "T1", "T2", ""]
    assert all(i["at"] > 0 for i in items)


# --- a worker publishing ---------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_a_worker_publishes_its_deliveries_with_titles_and_samples_its_figures(folders, emulator):
    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    await Recipient.objects.acreate(chat_id=ALICE, display_name="alice")
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(DASHBOARD_GROUP, channel)
    host = WorkerHost(Pipeline(sender_factory=build_sender))
    await host.start()
    try:
        (folders.CC_TELEGRAM_EVENTS_DIR / "e.json").write_text(
            '{"type": "build_failed", "title": "<img src=x onerror=alert(1)>"}'
        )
        message = await asyncio.wait_for(layer.receive(channel), 10)
        assert message["type"] == "deliveries"
        (item,) = message["items"]
        assert (item["title"], item["status"], item["chat_id"]) == (
            "<img src=x onerror=alert(1)>",
            "sent",
            ALICE,
        )
        assert item["latency_ms"] > 0
        for _ in range(100):
            if await WorkerSample.objects.filter(worker=host.pipeline.name).aexists():
                break
            await asyncio.sleep(0.05)
        sample = await WorkerSample.objects.aget(worker=host.pipeline.name)
        assert sample.memory_mb > 0
        worker = await Worker.objects.aget(name=host.pipeline.name)
        assert worker.memory_mb > 0
    finally:
        await host.stop()
        await layer.group_discard(DASHBOARD_GROUP, channel)
