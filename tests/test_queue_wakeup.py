"""Database queue wake-ups across processes (bridge.queue.wakeup): an entry enqueued by another process wakes a
blocked claim at once, not at its next poll. The poll interval is an hour here, so a claim that returns was woken.
Runs on the configured database: NOTIFY on PostgreSQL, a loopback datagram on SQLite."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bridge.events.priority import Priority
from bridge.models import Event
from bridge.queue import wakeup
from bridge.queue.base import NewEntry
from bridge.queue.database import DatabaseQueue
from tests.processes import child_database_url

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
HOUR_MS = 3_600_000
GUARD_SECONDS = 60  # a failure guard only, far below the hour a poll would take

CLAIMER = """
import asyncio, threading
import django
django.setup()
from tests.test_queue_wakeup import WatchedQueue

async def main():
    queue = WatchedQueue(poll_interval=3600)
    threading.Thread(target=lambda: queue.looked_empty.wait() and print("ready", flush=True)).start()
    claimed = await queue.claim("child", 5, block_ms=3_600_000)
    print(" ".join(item.event_id for item in claimed), flush=True)
    await queue.close()

asyncio.run(main())
"""


class WatchedQueue(DatabaseQueue):
    """Counts its looks at the table, so that a test can enqueue once a blocked claim has looked and found none."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.looked_empty = threading.Event()

    def _claim(self, consumer: str, count: int):
        claimed = super()._claim(consumer, count)
        if not claimed:
            self.looked_empty.set()
        return claimed


def child_env() -> dict[str, str]:
    """The child on this test's database queue, even where the suite has REDIS_URL (which would select Redis)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REDIS_URL", "CC_TELEGRAM_REDIS_URL")
    }
    return {**env, "DJANGO_SETTINGS_MODULE": "cctelegram.settings", "DATABASE_URL": child_database_url()}


async def new_entry() -> NewEntry:
    event_id = f"evt-{uuid.uuid4().hex}"
    row = await Event.objects.acreate(
        event_id=event_id,
        type="task_completed",
        category="task_management",
        title=event_id,
        timestamp=timezone.now(),
    )
    return NewEntry(row.pk, event_id, Priority.NORMAL, b'{"n": 1}')


async def test_event_sent_by_another_process_wakes_a_blocked_claim():
    queue = WatchedQueue(poll_interval=3600)
    try:
        waiting = asyncio.create_task(queue.claim("worker", 5, block_ms=HOUR_MS))
        assert await asyncio.to_thread(queue.looked_empty.wait, GUARD_SECONDS)

        sender = await asyncio.create_subprocess_exec(
            sys.executable,
            "manage.py",
            "send_event",
            "task_completion",
            "from another process",
            cwd=ROOT,
            env=child_env(),
        )
        assert await asyncio.wait_for(sender.wait(), GUARD_SECONDS) == 0
        claimed = await asyncio.wait_for(waiting, GUARD_SECONDS)

        sent = Event.objects.filter(title="from another process").values_list("event_id", flat=True)
        assert [c.event_id for c in claimed] == [event_id async for event_id in sent]
    finally:
        await queue.close()


async def test_claim_blocked_in_another_process_wakes_on_an_enqueue_here():
    child = subprocess.Popen(  # noqa: ASYNC220  (started once; its output is read off the loop)
        [sys.executable, "-c", CLAIMER], cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, text=True
    )
    queue = DatabaseQueue(poll_interval=3600)
    try:
        assert await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), GUARD_SECONDS) == "ready\n"
        entry = await new_entry()
        # The child has looked and found nothing: only a wake-up makes it look again within the hour.
        await queue.enqueue_batch([entry])
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), GUARD_SECONDS)

        assert line.split() == [entry.event_id]
        assert await asyncio.wait_for(asyncio.to_thread(child.wait), GUARD_SECONDS) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        await queue.close()


async def test_closed_queue_stops_listening_and_leaves_no_registration():
    # Other test workers may share CC_TELEGRAM_HOME: only this process's own file is looked at.
    folder = Path(settings.CC_TELEGRAM_HOME) / wakeup.FOLDER
    queue = DatabaseQueue(poll_interval=3600)
    assert await queue.claim("worker", 1, block_ms=1) == []
    port = wakeup._listeners.get_port()
    registered = (folder / str(port)).exists()
    await queue.close()

    if connection.vendor == "postgresql":
        assert port == 0  # LISTEN on its own connection is the registration
    else:
        assert port and registered
        assert not (folder / str(port)).exists()
    assert wakeup._listeners.get_port() == 0
