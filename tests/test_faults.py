"""Fault injection with real processes: workers killed, Redis restarted, the database away, Telegram failing, the
responses folder unwritable. Nothing may be lost; duplicates are counted and printed (run with -s to see them).

Every test runs ``manage.py run_bridge`` children (tests/processes.py) on the test database, a Redis and the
emulator in this process. CC_TELEGRAM_FAULT_EVENTS sets the size of the SIGKILL run (see kill_run_size).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError

from bridge import deliveries
from bridge.models import BridgeSettings, Delivery, Event, Recipient, Response
from bridge.pipeline import Pipeline
from bridge.queue import QueueError
from bridge.queue.database import DatabaseQueue
from bridge.queue.redis_streams import RedisStreamsQueue
from bridge.telegram.send import build_sender
from tests.emulator_fixtures import TEST_TOKEN
from tests.processes import (
    BridgeProcesses,
    DatabaseOutage,
    PrivateRedis,
    drop_event,
    is_postgresql,
    lines_matching,
    send_calls,
    titles_received,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

CHATS = [7001, 7002, 7003, 7004, 7005]
KILLS = 10
TYPES = ("info_notification", "task_completion", "build_failed", "file_modified")


def make_world(**settings_changes) -> None:
    """One recipient per chat, each taking the events of its own source; settings for a fast run."""
    for i, chat_id in enumerate(CHATS):
        Recipient.objects.create(chat_id=chat_id, display_name=f"chat {i}", sources=f"project-{i}")
    make_world_settings(**settings_changes)


def make_world_settings(**settings_changes) -> None:
    current = BridgeSettings.load()
    values = {
        "rate_per_chat_per_second": 100,
        "rate_global_per_second": 1000,
        "digest_threshold": 10_000,
        "retry_base_delay_ms": 50,
        "retry_max_delay_ms": 500,
        "retry_attempts": 20,
        **settings_changes,
    }
    for name, value in values.items():
        setattr(current, name, value)
    current.full_clean()
    current.save()


def event(tag: str, i: int) -> dict:
    return {"type": TYPES[i % len(TYPES)], "title": f"{tag}-{i:05d}", "source": f"project-{i % len(CHATS)}"}


class Feeder(threading.Thread):
    """Drops ``count`` events into the folder at ``per_second``, as agents would while the bridge runs."""

    def __init__(self, bridge: BridgeProcesses, tag: str, count: int, per_second: float, start: int = 0):
        super().__init__(name=f"feeder {tag}", daemon=True)
        self.bridge, self.tag, self.count, self.per_second, self.first = bridge, tag, count, per_second, start

    def run(self) -> None:
        began = time.monotonic()
        for n in range(self.count):
            i = self.first + n
            self.bridge.drop(f"{self.tag}-{i:05d}.json", event(self.tag, i))
            ahead = began + (n + 1) / self.per_second - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


def sent_count() -> int:
    return Delivery.objects.filter(status=Delivery.Status.SENT).count()


def assert_all_delivered(bridge: BridgeProcesses, tag: str, count: int) -> int:
    """Every event is stored, done, sent to its chat and seen by the emulator; returns the duplicate sends."""
    expected = {f"{tag}-{i:05d}" for i in range(count)}
    assert bridge.waiting_files() == []
    assert not (bridge.events_dir / "failed").exists()
    assert Event.objects.count() == count
    assert Event.objects.exclude(status=Event.Status.DONE).count() == 0
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == count
    assert set(Delivery.objects.values_list("event__title", flat=True)) == expected
    received = titles_received(bridge.emulator, re.compile(rf"{tag}-\d{{5}}"))
    missing = expected - set(received)
    assert not missing, f"{len(missing)} events never reached Telegram, e.g. {sorted(missing)[:5]}"
    return sum(received.values()) - count


@pytest.fixture
def bridge(tmp_path, emulator, redis_url, key_prefix, transactional_db):
    bridge = BridgeProcesses(
        tmp_path, emulator=emulator, redis_url=redis_url, key_prefix=key_prefix, visibility_timeout=5
    )
    yield bridge
    bridge.kill_all()


def kill_run_size() -> int:
    """CC_TELEGRAM_FAULT_EVENTS, else 2,000 on PostgreSQL (the CI configuration) and 1,000 on SQLite, where a
    laptop's run should stay short."""
    return int(os.environ.get("CC_TELEGRAM_FAULT_EVENTS") or (2000 if is_postgresql() else 1000))


def test_ten_sigkills_during_a_run_lose_no_event(bridge):
    events = kill_run_size()
    # Small claims, so that a claimed batch is taken in well within the visibility timeout on a busy machine
    # (a live worker's entries reclaimed by another are sent twice too, and that is not what this counts).
    make_world(queue_batch_size=20)
    bridge.spawn(3)
    began = time.monotonic()
    # The feed lasts about as long as the kills, so they land in ingest, claims, sends and recording alike.
    feeder = Feeder(bridge, "kill", events, per_second=max(100.0, events / 15))
    feeder.start()
    rng = random.Random(1234)
    kills = []

    def ready() -> list:
        return [w for w in bridge.alive() if w.ready()]

    for _ in range(KILLS):
        time.sleep(rng.uniform(0.3, 1.2))
        # Never the last one up: the run must go on while successors start.
        wait_for(lambda: len(ready()) >= 2, timeout=90, what="two workers up")
        rng.choice(ready()).kill()
        kills.append((round(time.monotonic() - began, 1), sent_count()))
        bridge.spawn(1, wait=False)  # its successor
    feeder.join()
    last_kill = time.monotonic()
    wait_for(lambda: sent_count() >= events, timeout=180, what=f"{events} events sent", every=0.2)
    finished = time.monotonic()
    assert bridge.stop_all() == [], "a worker did not drain and exit on SIGTERM"

    duplicates = assert_all_delivered(bridge, "kill", events)
    print(
        f"\nSIGKILL x{KILLS} during {events} events: lost 0, duplicate sends {duplicates}, "
        f"run {finished - began:.1f} s, done {finished - last_kill:.1f} s after the last kill; "
        f"kills at (s, sent so far): {kills}"
    )
    # A kill can repeat at most one send per chat: the one in flight or out but not yet recorded when it struck (a
    # chat's next send waits until the previous one is on the books).
    assert duplicates <= KILLS * len(CHATS)


def test_redis_restarted_mid_run_loses_nothing_and_the_bridge_reconnects(
    tmp_path, emulator, key_prefix, transactional_db
):
    redis = PrivateRedis(tmp_path / "redis").start()
    bridge = BridgeProcesses(
        tmp_path / "bridge", emulator=emulator, redis_url=redis.url, key_prefix=key_prefix
    )
    try:
        make_world()
        [worker] = bridge.spawn(1)
        before = Feeder(bridge, "redis", 150, per_second=150)
        before.run()
        wait_for(lambda: sent_count() >= 50, timeout=60, what="the first sends")

        redis.stop()
        went_down = time.time()
        during = Feeder(bridge, "redis", 150, per_second=150, start=150)
        during.run()  # agents keep writing while Redis is away: the files wait in the folder
        time.sleep(max(0.0, went_down + 2.0 - time.time()))
        redis.start()
        came_back = time.time()

        wait_for(lambda: sent_count() >= 300, timeout=90, what="every event sent", every=0.2)
        first_after = min(c["time"] for c in send_calls(emulator) if c["ok"] and c["time"] > came_back)
        assert worker.alive(), worker.log_tail()
        assert bridge.stop_all() == []
        duplicates = assert_all_delivered(bridge, "redis", 300)
    finally:
        bridge.kill_all()
        redis.stop()
    print(
        f"\nRedis down {came_back - went_down:.1f} s mid-run: lost 0, duplicate sends {duplicates}, "
        f"first send {first_after - came_back:.2f} s after Redis was back"
    )
    assert duplicates <= len(CHATS)


def test_database_away_for_seconds_is_waited_out_with_backoff(
    tmp_path, emulator, redis_url, key_prefix, transactional_db
):
    outage = DatabaseOutage(sqlite_timeout=1)
    bridge = BridgeProcesses(
        tmp_path,
        emulator=emulator,
        redis_url=redis_url,
        key_prefix=key_prefix,
        database_url=outage.database_url,
    )
    try:
        make_world()
        [worker] = bridge.spawn(1)
        Feeder(bridge, "db", 100, per_second=200).run()
        wait_for(lambda: sent_count() >= 30, timeout=60, what="the first sends")

        away = threading.Thread(target=outage.hold, args=(4.0,))
        went_down = time.time()
        away.start()
        Feeder(bridge, "db", 100, per_second=50, start=100).run()  # written while the database is away
        away.join()
        came_back = time.time()

        wait_for(lambda: sent_count() >= 200, timeout=90, what="every event sent", every=0.2)
        assert worker.alive(), worker.log_tail()
        log = worker.log()
        assert bridge.stop_all() == []
        duplicates = assert_all_delivered(bridge, "db", 200)
    finally:
        bridge.kill_all()
        outage.close()
    complaints = lines_matching(log, [outage.log_marker])
    assert complaints, f"the outage left no trace in the log:\n{log[-3000:]}"
    done = max(c["time"] for c in send_calls(emulator) if c["ok"])
    print(
        f"\ndatabase away {came_back - went_down:.1f} s: lost 0, duplicate sends {duplicates}, "
        f"{len(complaints)} log lines about it, all sent {done - came_back:.1f} s after it was back"
    )
    assert duplicates <= len(CHATS)


FAULTS = [
    {"method": "sendMessage", "status": 429, "retry_after": 1, "probability": 0.08},
    {"method": "sendMessage", "status": 500, "probability": 0.04},
    {"method": "sendMessage", "status": 502, "probability": 0.04},
    # Held until the client gives up (its timeout is 1 s here), then answered 504: a hung Bot API...
    {"method": "sendMessage", "timeout": True, "hold_ms": 3000, "status": 504, "probability": 0.03},
    # ...and one that sent the message but whose answer was lost: the retry sends it again.
    {
        "method": "sendMessage",
        "timeout": True,
        "hold_ms": 3000,
        "status": 504,
        "apply": True,
        "probability": 0.02,
    },
]


def test_telegram_failing_a_fifth_of_sends_still_gets_everything_and_retry_after_is_honoured(
    tmp_path, emulator, redis_url, key_prefix, transactional_db
):
    count = 250
    bridge = BridgeProcesses(
        tmp_path,
        emulator=emulator,
        redis_url=redis_url,
        key_prefix=key_prefix,
        extra_env={"CC_TELEGRAM_API_TIMEOUT": "1"},
    )
    try:
        # The breaker has its own tests; here it must not pause everything for the scattered 5xx.
        make_world(breaker_failure_threshold=200, breaker_window_seconds=5)
        bridge.spawn(1)
        httpx.post(f"{emulator.control_url}/faults", json={"rules": FAULTS}).raise_for_status()
        Feeder(bridge, "flaky", count, per_second=300).run()
        wait_for(lambda: sent_count() >= count, timeout=120, what="every event sent", every=0.2)
        assert bridge.stop_all() == []
        duplicates = assert_all_delivered(bridge, "flaky", count)
    finally:
        bridge.kill_all()

    calls = send_calls(emulator)
    failed = [c for c in calls if not c["ok"]]
    by_status = {status: sum(1 for c in failed if c["status"] == status) for status in (429, 500, 502, 504)}
    too_soon = []
    for chat_id in CHATS:
        # Answers to requests made after the 429 (a held 504 answers a request made before it).
        mine = [c for c in calls if int(c["params"]["chat_id"]) == chat_id and c["status"] != 504]
        for index, call in enumerate(mine):
            if call["status"] == 429:
                too_soon += [
                    (chat_id, round(later["time"] - call["time"], 3))
                    for later in mine[index + 1 :]
                    if later["time"] < call["time"] + 1.0
                ]
    print(
        f"\nemulator failing {len(failed)}/{len(calls)} sends ({100 * len(failed) / len(calls):.0f} %) "
        f"{by_status}: lost 0, duplicate sends {duplicates} (answers lost after sending), "
        f"sends within retry_after of a 429: {len(too_soon)}"
    )
    assert len(failed) / len(calls) > 0.1
    assert by_status[429] and by_status[504]
    assert too_soon == []
    assert duplicates <= by_status[504]


def test_unwritable_responses_folder_keeps_the_answer_and_writes_it_once_back(bridge):
    make_world()
    [worker] = bridge.spawn(1)
    folder = bridge.responses_dir
    with unusable(folder):
        bridge.emulator.say(CHATS[0], "ship it when the tests pass")
        response = wait_for(
            lambda: Response.objects.exclude(file_error__in=("", "not written yet")).first(),
            timeout=30,
            what="the response stored with the reason its file is missing",
        )
        assert response.message_text == "ship it when the tests pass"
        assert str(folder) in response.file_error
        assert lines_matching(worker.log(), ["not written to", "kept in the database"])
    back_at = time.monotonic()
    response = wait_for(
        lambda: Response.objects.filter(pk=response.pk, file_error="").exclude(file_name="").first(),
        timeout=30,
        what="the file written and the row told so",
    )
    written = list(folder.glob("telegram_response_*.json"))
    assert [p.name for p in written] == [response.file_name]
    assert json.loads(written[0].read_text())["message_text"] == "ship it when the tests pass"
    assert worker.alive()
    print(f"\nresponses folder back: the kept response written {time.monotonic() - back_at:.1f} s later")


@contextlib.contextmanager
def unusable(folder: Path):
    """The folder cannot be written to. Permissions do not stop root, so as root a plain file takes its place."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    aside = folder.with_name(folder.name + ".aside")
    folder.rename(aside)
    folder.write_text("not a folder")
    try:
        yield
    finally:
        folder.unlink()
        aside.rename(folder)


# --- the same faults at one seam, in this process -----------------------------------------------------------------


@pytest.fixture
def one_chat(folders, emulator, transactional_db):
    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    Recipient.objects.create(chat_id=CHATS[0], display_name="chat 0")
    return folders


async def run_pipeline() -> None:
    pipeline = Pipeline(sender_factory=build_sender)
    try:
        await pipeline.run_once()
    finally:
        await pipeline.queue.close()


async def test_a_sent_message_whose_record_fails_is_recorded_later_never_sent_again(
    one_chat, emulator, monkeypatch
):
    await sync_to_async(make_world_settings)()
    failures = iter([True, True, True])
    real_record = deliveries.record

    def flaky_record(outcomes):
        if next(failures, False):
            raise OperationalError("the database went away")
        return real_record(outcomes)

    monkeypatch.setattr(deliveries, "record", flaky_record)
    for i in range(3):
        drop_event(Path(one_chat.CC_TELEGRAM_EVENTS_DIR), f"r{i}.json", event("recorded", i * len(CHATS)))
    await run_pipeline()
    received = titles_received(emulator, re.compile(r"recorded-\d{5}"))
    assert sorted(received.values()) == [1, 1, 1]
    assert await Delivery.objects.filter(status=Delivery.Status.SENT).acount() == 3
    assert await Event.objects.filter(status=Event.Status.DONE).acount() == 3


async def test_entries_whose_lease_lapsed_are_not_taken_in_twice_by_their_own_worker(
    one_chat, emulator, monkeypatch
):
    """The queue unreachable longer than the visibility timeout: the worker reclaims its own entries, whose
    deliveries already wait in its outboxes."""
    one_chat.CC_TELEGRAM_VISIBILITY_TIMEOUT = 1
    await sync_to_async(make_world_settings)(rate_per_chat_per_second=3)  # ~2 s of sends: past the timeout
    for i in range(6):
        drop_event(Path(one_chat.CC_TELEGRAM_EVENTS_DIR), f"l{i}.json", event("lapsed", i * len(CHATS)))

    async def unreachable(self, consumer, items):
        raise QueueError("the queue is unreachable")

    for backend in (DatabaseQueue, RedisStreamsQueue):
        monkeypatch.setattr(backend, "extend", unreachable)
    pipeline = Pipeline(sender_factory=build_sender)  # running, so that it claims (and reclaims) all along
    await pipeline.start()
    try:
        deadline = time.monotonic() + 30
        while await Event.objects.filter(status=Event.Status.DONE).acount() < 6:
            assert time.monotonic() < deadline, "the events were not all sent"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # a further reclaim would come within the timeout: give it the chance
    finally:
        await pipeline.stop()
    received = titles_received(emulator, re.compile(r"lapsed-\d{5}"))
    assert sorted(received.values()) == [1] * 6
    assert await Event.objects.filter(status=Event.Status.DONE).acount() == 6
