"""Scale-out: three `run_bridge` workers on one Redis and one database share the queue's streams, deliver every
event exactly once, keep the rate limits together (they share them in Redis), and when one is killed the others
take over what it held. Run with -s for the per-worker figures.

CC_TELEGRAM_SCALE_EVENTS sets the size of the sharing run (default 500).
"""

from __future__ import annotations

import os
import re
import time

import httpx
import pytest

from bridge.models import BridgeSettings, Delivery, Event, Recipient
from tests.processes import BridgeProcesses, PendingSampler, counter_by_pid, titles_received, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CHATS = [9001 + i for i in range(10)]
PER_CHAT = 20  # sends per second to one chat, for the bridge and for the emulator alike
EVENTS = int(os.environ.get("CC_TELEGRAM_SCALE_EVENTS", "500"))
WORKERS = 3


def make_world() -> None:
    """A recipient per chat, each taking its own source; small claims, so that the work spreads."""
    for i, chat_id in enumerate(CHATS):
        Recipient.objects.create(chat_id=chat_id, display_name=f"chat {i}", sources=f"project-{i}")
    current = BridgeSettings.load()
    current.rate_per_chat_per_second = PER_CHAT
    current.rate_global_per_second = 1000
    current.digest_threshold = 10_000
    current.queue_batch_size = 10
    current.pipeline_capacity = 40
    current.retry_base_delay_ms = 50
    current.retry_max_delay_ms = 500
    current.full_clean()
    current.save()


def event(tag: str, i: int) -> dict:
    return {"type": "task_completion", "title": f"{tag}-{i:05d}", "source": f"project-{i % len(CHATS)}"}


def sent() -> int:
    return Delivery.objects.filter(status=Delivery.Status.SENT).count()


@pytest.fixture
def bridge(tmp_path, emulator, redis_url, key_prefix, transactional_db):
    metrics_dir = tmp_path / "metrics"
    bridge = BridgeProcesses(
        tmp_path,
        emulator=emulator,
        redis_url=redis_url,
        key_prefix=key_prefix,
        extra_env={"CC_TELEGRAM_METRICS_DIR": str(metrics_dir)},
    )
    bridge.metrics_dir = metrics_dir
    make_world()
    # Telegram's flood control at the same per-chat rate, with the short burst Telegram tolerates.
    limits = {
        "enabled": True,
        "per_chat_per_second": PER_CHAT,
        "per_chat_burst": 3,
        "global_per_second": 1000,
    }
    httpx.post(f"{emulator.control_url}/limits", json=limits).raise_for_status()
    yield bridge
    bridge.kill_all()


def test_three_workers_share_the_work_send_each_event_once_and_keep_the_shared_rate(
    bridge, redis_url, key_prefix
):
    workers = bridge.spawn(WORKERS)
    sampler = PendingSampler(redis_url, key_prefix)
    sampler.start()
    began = time.monotonic()
    for i in range(EVENTS):
        bridge.drop(f"share-{i:05d}.json", event("share", i))
    wait_for(lambda: sent() >= EVENTS, timeout=120, what=f"{EVENTS} events sent", every=0.2)
    took = time.monotonic() - began
    sampler.stop()
    assert bridge.stop_all() == [], "a worker did not drain and exit on SIGTERM"

    received = titles_received(bridge.emulator, re.compile(r"share-\d{5}"))
    assert len(received) == EVENTS
    assert [title for title, n in received.items() if n > 1] == []  # exactly once
    assert Event.objects.exclude(status=Event.Status.DONE).count() == 0
    stats = bridge.emulator.state.stats()
    assert stats["too_many_requests"] == 0  # together they never went over Telegram's limit...
    assert stats["max_per_chat_per_second"] <= PER_CHAT  # ...nor over the one configured
    per_worker = counter_by_pid(bridge.metrics_dir, "cc_telegram_messages_total", outcome="sent")
    shares = {w.pid: int(per_worker.get(w.pid, 0)) for w in workers}
    assert sum(shares.values()) == EVENTS
    assert all(shares.values()), f"a worker got no work: {shares}"
    held = {w.pid: sampler.max_held[w.consumer] for w in workers}
    assert all(held.values()), f"a worker never held an entry of the streams: {held}"
    print(
        f"\n{WORKERS} workers, {EVENTS} events to {len(CHATS)} chats at {PER_CHAT}/s each: {took:.1f} s; "
        f"sends per worker {sorted(shares.values())}; most entries held at once {sorted(held.values())}; "
        f"max per chat in any second {stats['max_per_chat_per_second']}, 429s {stats['too_many_requests']}"
    )


def test_killing_a_worker_hands_its_pending_entries_to_the_others(bridge, redis_url, key_prefix):
    count = 300
    workers = bridge.spawn(WORKERS)
    sampler = PendingSampler(redis_url, key_prefix)
    sampler.start()
    for i in range(count):
        bridge.drop(f"handover-{i:05d}.json", event("handover", i))
    # The worker holding most at this moment: its claimed entries wait on the per-chat rate.
    busiest = wait_for(
        lambda: max(
            (w for w in workers if sampler.latest.get(w.consumer, 0) >= 5),
            key=lambda w: sampler.latest.get(w.consumer, 0),
            default=None,
        ),
        timeout=60,
        what="a worker holding entries",
        every=0.01,
    )
    busiest.kill()
    killed_at = time.monotonic()
    held_at_kill = sampler.held_now().get(busiest.consumer, 0)
    assert held_at_kill > 0  # entries claimed and not acked: only another worker can finish them now
    handed_over = wait_for(
        lambda: sampler.latest.get(busiest.consumer, 0) == 0 and time.monotonic(),
        timeout=60,
        what="the dead worker's entries to be taken over",
        every=0.02,
    )
    wait_for(lambda: sent() >= count, timeout=120, what=f"{count} events sent", every=0.2)
    sampler.stop()
    assert bridge.stop_all() == []

    received = titles_received(bridge.emulator, re.compile(r"handover-\d{5}"))
    assert len(received) == count  # nothing lost
    assert Event.objects.exclude(status=Event.Status.DONE).count() == 0
    duplicates = sum(received.values()) - count
    # Only sends in flight when it died can repeat: at most one per chat.
    assert duplicates <= len(CHATS)
    survivors = {w.pid: sampler.samples_holding[w.consumer] for w in workers if w is not busiest}
    assert all(survivors.values()), f"a survivor held nothing: {survivors}"
    print(
        f"\nSIGKILL of a worker holding {held_at_kill} entries: lost 0, duplicate sends {duplicates}, "
        f"its entries taken over {handed_over - killed_at:.1f} s after the kill "
        f"(visibility timeout {bridge.env['CC_TELEGRAM_VISIBILITY_TIMEOUT']} s)"
    )
