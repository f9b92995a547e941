"""Events in: event files -> watcher -> ingestor -> durable Event row + queue entry, on both queue backends.

Everything runs through the real path (FileSource, Ingestor, EventStore, a real queue on the test database or on
Redis); failures are injected with small wrappers around the store or the queue, never with mocks. Waits poll with
short sleeps and a timeout, so the suite is as fast as the machine and never asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.db import connection
from prometheus_client import REGISTRY

from bridge.events.priority import Priority
from bridge.ingest.checkpoint import WalCheckpointer
from bridge.ingest.quarantine import FAILED_DIR_NAME
from bridge.ingest.watcher import is_event_file
from bridge.models import AuditEntry, BridgeSettings, QueueEntry
from bridge.models import Event as EventRow
from bridge.pipeline import Pipeline
from bridge.queue import LANES, QueueError, get_queue
from bridge.queue.database import DatabaseQueue
from bridge.queue.redis_streams import RedisStreamsQueue

# The queue works on other threads' connections, which must see committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 20.0


# --- the small world -----------------------------------------------------------------------------------------


@pytest.fixture(params=["database", "redis"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def events_dir(folders) -> Path:
    return Path(folders.CC_TELEGRAM_EVENTS_DIR)


@pytest.fixture
def failed_dir(events_dir) -> Path:
    return events_dir / FAILED_DIR_NAME


@pytest.fixture
async def make_queue(backend, redis_url, key_prefix):
    """Queues on the backend under test; Redis keys of the test deleted afterwards."""
    made = []

    def make():
        if backend == "redis":
            queue = RedisStreamsQueue.from_url(redis_url, prefix=key_prefix)
        else:
            queue = DatabaseQueue(poll_interval=0.05)
        made.append(queue)
        return queue

    yield make
    if backend == "redis":
        client = aioredis.Redis.from_url(redis_url)
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def queued(backend, redis_url, key_prefix):
    """``await queued()``: event_ids of the entries in the durable queue, in enqueue order."""
    reader = RedisStreamsQueue.from_url(redis_url, prefix=key_prefix) if backend == "redis" else None

    async def read() -> list[str]:
        if reader is None:
            entries = QueueEntry.objects.order_by("pk").values_list("event__event_id", flat=True)
            return [event_id async for event_id in entries]
        return in_stream_order(
            [e for lane in LANES for e in await reader.redis.xrange(reader.lane_key(lane))]
        )

    yield read
    if reader is not None:
        await reader.close()


@pytest.fixture
async def pipelines(events_dir, make_queue):
    """``make(queue=None)``: an ingest-only Pipeline on this test's folder, not started; stopped at teardown."""
    made: list[Pipeline] = []

    def make(*, queue=None) -> Pipeline:
        pipeline = Pipeline(events_dir=events_dir, queue=queue or make_queue(), name="test-worker")
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        if pipeline._tasks:
            await pipeline.stop()
        else:
            await pipeline.queue.close()  # closing twice is harmless


@pytest.fixture
async def running(pipelines) -> Pipeline:
    pipeline = pipelines()
    await pipeline.start()
    return pipeline


def in_stream_order(entries: list[tuple[bytes, dict]]) -> list[str]:
    """Event ids of Redis stream entries from several lanes, in the order they were added."""

    def added(entry: tuple[bytes, dict]) -> tuple[int, int]:
        ms, seq = entry[0].decode().split("-")
        return int(ms), int(seq)

    return [fields[b"id"].decode() for _, fields in sorted(entries, key=added)]


def event(title: str, type_: str = "task_completion", **fields) -> dict:
    return {"type": type_, "title": title, **fields}


def write_event(folder: Path, name: str, content: dict | bytes, *, mtime: float | None = None) -> Path:
    """Write as a careful agent does: to a temp name, then rename into place."""
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(raw)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    path = folder / name
    os.rename(tmp, path)
    return path


async def wait_for(condition: Callable, within: float = TIMEOUT, what: str = "condition"):
    """Poll ``condition`` (sync or async) until it is truthy; its value, or a failure after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.005)


async def titles_in_order() -> list[str]:
    return [title async for title in EventRow.objects.order_by("pk").values_list("title", flat=True)]


async def event_ids_for(*titles: str) -> list[str]:
    rows = {t: e async for t, e in EventRow.objects.filter(title__in=titles).values_list("title", "event_id")}
    return [rows[t] for t in titles]


def json_files(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".json"))


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def set_bridge_settings(**values) -> None:
    def update():
        current = BridgeSettings.load()
        for key, value in values.items():
            setattr(current, key, value)
        current.save()

    await sync_to_async(update)()


# --- the fast path ---------------------------------------------------------------------------------------------


async def test_file_renamed_into_folder_is_durably_queued_and_removed(running, events_dir, queued):
    path = write_event(events_dir, "build.json", event("Build done", data={"status": "completed"}))

    async def gone_and_queued():
        return (
            not path.exists()
            and await EventRow.objects.filter(title="Build done").aexists()
            and await queued()
        )

    await wait_for(gone_and_queued, what="the event to be queued and its file removed")
    row = await EventRow.objects.aget(title="Build done")
    assert row.type == "task_completion"
    assert row.origin == "file"
    assert row.status == EventRow.Status.QUEUED
    assert row.data == {"status": "completed"}
    assert await queued() == [row.event_id]


async def test_files_waiting_at_start_are_taken_oldest_first(pipelines, events_dir, queued):
    now = time.time()
    oldest_first = ["c", "a", "e", "b", "d"]
    for age, name in enumerate(reversed(oldest_first)):
        write_event(events_dir, f"{name}.json", event(f"event {name}"), mtime=now - 60 - age)
    pipeline = pipelines()
    await pipeline.start()

    await wait_for(lambda: not json_files(events_dir), what="the waiting files to be taken")
    titles = [f"event {name}" for name in oldest_first]
    assert await titles_in_order() == titles
    assert await queued() == await event_ids_for(*titles)


async def test_restart_takes_files_written_while_no_pipeline_ran(pipelines, events_dir, queued):
    first = pipelines()
    await first.start()
    write_event(events_dir, "before.json", event("before the stop"))
    await wait_for(lambda: not json_files(events_dir), what="the first file")
    await first.stop()

    now = time.time()
    for i in range(5):
        write_event(events_dir, f"offline-{i}.json", event(f"offline {i}"), mtime=now - 10 + i)
    await asyncio.sleep(0.05)
    assert len(json_files(events_dir)) == 5  # nobody is watching

    second = pipelines()
    await second.start()
    await wait_for(lambda: not json_files(events_dir), what="the files written while stopped")
    titles = ["before the stop"] + [f"offline {i}" for i in range(5)]
    assert await titles_in_order() == titles
    assert await queued() == await event_ids_for(*titles)


async def test_other_extensions_and_temp_names_are_ignored_and_left(running, events_dir, queued):
    ignored = [
        ".foo.json",
        "foo.json.tmp",
        "foo.txt",
        "foo.json~",
        "#foo.json",
        "foo.json.swp",
        "foo.json.part",
    ]
    for name in ignored:
        (events_dir / name).write_text(json.dumps(event(f"ignored {name}")))
    write_event(events_dir, "good.json", event("the good one"))

    await wait_for(lambda: not (events_dir / "good.json").exists(), what="the good file")
    assert sorted(os.listdir(events_dir)) == sorted(ignored)
    assert running.source.scan(100) == []  # a sweep does not consider them either
    assert await titles_in_order() == ["the good one"]
    assert len(await queued()) == 1
    assert not any(is_event_file(name) for name in ignored)


async def test_same_content_rewritten_is_not_queued_twice(running, events_dir, queued):
    content = event("Tests passed", data={"tests_passed": 12})
    duplicates_before = metric("cc_telegram_events_duplicate_total")
    path = write_event(events_dir, "tests.json", content)
    await wait_for(lambda: not path.exists(), what="the first file")
    await wait_for(queued, what="the queue entry")

    write_event(events_dir, "tests.json", content)
    await wait_for(lambda: not path.exists(), what="the re-written file to be removed")
    write_event(events_dir, "tests-copy.json", content)  # another name, the same bytes
    await wait_for(lambda: not (events_dir / "tests-copy.json").exists(), what="the copy to be removed")

    assert await EventRow.objects.acount() == 1
    assert len(await queued()) == 1
    assert metric("cc_telegram_events_duplicate_total") == duplicates_before + 2


async def test_explicit_event_id_deduplicates_different_content(running, events_dir, queued):
    write_event(events_dir, "one.json", event("first telling", event_id="evt-42"))
    await wait_for(lambda: not (events_dir / "one.json").exists(), what="the first file")
    write_event(events_dir, "two.json", event("second telling", event_id="evt-42"))
    await wait_for(lambda: not (events_dir / "two.json").exists(), what="the second file")

    assert await titles_in_order() == ["first telling"]
    assert await queued() == ["evt-42"]


async def test_duplicates_within_one_batch_are_queued_once(pipelines, events_dir, queued):
    content = event("twice in one sweep")
    now = time.time()
    write_event(events_dir, "a.json", content, mtime=now - 2)
    write_event(events_dir, "b.json", content, mtime=now - 1)
    pipeline = pipelines()
    summary = await pipeline.ingest_waiting()

    assert (summary.stored, summary.duplicates, summary.quarantined) == (1, 1, 0)
    assert json_files(events_dir) == []
    assert len(await queued()) == 1


async def test_a_batch_holding_an_event_stored_before_stores_the_new_ones_once(pipelines, events_dir, queued):
    write_event(events_dir, "old.json", event("old"))
    pipeline = pipelines()
    await pipeline.ingest_waiting()
    now = time.time()
    write_event(events_dir, "new-1.json", event("new 1"), mtime=now - 3)
    write_event(events_dir, "old-again.json", event("old"), mtime=now - 2)  # same content, same event_id
    write_event(events_dir, "new-2.json", event("new 2"), mtime=now - 1)
    summary = await pipeline.ingest_waiting()

    assert (summary.stored, summary.duplicates) == (2, 1)
    assert json_files(events_dir) == []
    assert await titles_in_order() == ["old", "new 1", "new 2"]
    rows = [event_id async for event_id in EventRow.objects.order_by("pk").values_list("event_id", flat=True)]
    assert await queued() == rows


async def test_one_explicit_id_twice_in_a_batch_queues_the_version_stored(pipelines, events_dir):
    now = time.time()
    write_event(events_dir, "first.json", event("first version", event_id="evt-7"), mtime=now - 2)
    write_event(events_dir, "second.json", event("second version", event_id="evt-7"), mtime=now - 1)
    pipeline = pipelines()
    summary = await pipeline.ingest_waiting()

    assert (summary.stored, summary.duplicates) == (1, 1)
    assert await titles_in_order() == ["first version"]
    [entry] = await pipeline.queue.claim("test", 10)
    assert json.loads(entry.payload)["title"] == "first version"  # the row and the payload agree


# --- quarantine ------------------------------------------------------------------------------------------------


def _deep(levels: int) -> dict:
    data: dict = {}
    for _ in range(levels):
        data = {"x": data}
    return event("too deep", data=data)


BAD_FILES = {
    "invalid_json": b'{"type": "task_completion", "title": "cut off',
    "invalid_utf8": b'{"type": "task_completion", "title": "caf\xe9 \xff"}',
    "not_an_object": b'["task_completion", "Build done"]',
    "missing_field": json.dumps({"type": "task_completion"}).encode(),
    "wrong_type": json.dumps({"type": "task_completion", "title": ["not", "a", "string"]}).encode(),
    "too_long": json.dumps(event("x" * 201)).encode(),
    "too_large": json.dumps(event("big", description="a" * (2 * 1024 * 1024))).encode(),
    "too_deep": json.dumps(_deep(40)).encode(),
    "empty": b"",
}


async def assert_quarantined(failed_dir: Path, name: str, code: str) -> dict:
    note_path = failed_dir / f"{name}.error.json"
    await wait_for(note_path.exists, what=f"{name} to be quarantined")
    note = json.loads(note_path.read_text())
    assert note["code"] == code
    assert note["reason"]
    assert note["file"] == name
    assert os.path.lexists(failed_dir / name)
    audit = AuditEntry.objects.filter(action="event.quarantined", object_id=name)
    entry = await wait_for(audit.afirst, what=f"the audit entry for {name}")  # written just after the note
    assert await audit.acount() == 1
    assert entry.detail.startswith(f"{code}: ")
    assert entry.actor == "bridge"
    return note


@pytest.mark.parametrize("code", list(BAD_FILES))
async def test_bad_file_is_quarantined_with_reason_and_watcher_keeps_going(
    code, running, events_dir, failed_dir, queued
):
    counted = metric("cc_telegram_events_quarantined_total", reason=code)
    write_event(events_dir, f"bad-{code}.json", BAD_FILES[code])
    write_event(events_dir, "after.json", event("after the bad one"))

    note = await assert_quarantined(failed_dir, f"bad-{code}.json", code)
    if code == "too_large":
        assert note["size_bytes"] > 2 * 1024 * 1024
    await wait_for(lambda: not (events_dir / "after.json").exists(), what="the good file after the bad one")
    assert json_files(events_dir) == []
    assert await titles_in_order() == ["after the bad one"]
    assert len(await queued()) == 1
    assert metric("cc_telegram_events_quarantined_total", reason=code) == counted + 1
    assert not running._tasks[0].done()  # the watcher still runs


async def test_wrong_typed_optional_fields_are_quarantined(running, events_dir, failed_dir):
    write_event(events_dir, "data.json", event("data is a string", data="completed"))
    write_event(events_dir, "retry.json", event("bad retry", retry_count=-1))
    write_event(events_dir, "type.json", event("bad type", type_="Not A Type!"))
    for name in ("data.json", "retry.json", "type.json"):
        await assert_quarantined(failed_dir, name, "wrong_type")


async def test_symlink_outside_the_folder_is_quarantined_not_followed(
    running, events_dir, failed_dir, tmp_path
):
    secret = tmp_path / "elsewhere" / "secret.json"
    secret.parent.mkdir()
    secret.write_text(json.dumps(event("must not be read")))
    os.symlink(secret, events_dir / "escape.json")

    await assert_quarantined(failed_dir, "escape.json", "unsafe_path")
    assert (failed_dir / "escape.json").is_symlink()  # the link moved, not its target
    assert secret.exists()
    assert not await EventRow.objects.filter(title="must not be read").aexists()


async def test_symlink_inside_the_folder_is_ingested(running, events_dir, failed_dir, queued):
    target = events_dir / "payload.txt"  # an ignored name: only the link is an event file
    target.write_text(json.dumps(event("through a link")))
    os.symlink(target, events_dir / "link.json")

    await wait_for(lambda: not os.path.lexists(events_dir / "link.json"), what="the link to be taken")
    assert await titles_in_order() == ["through a link"]
    assert len(await queued()) == 1
    assert target.exists()  # the link is removed, never what it points to
    assert not failed_dir.exists()


async def test_several_bad_files_then_good_ones_in_one_flow(running, events_dir, failed_dir, queued):
    for code, raw in BAD_FILES.items():
        write_event(events_dir, f"{code}.json", raw)
    for i in range(3):
        write_event(events_dir, f"good-{i}.json", event(f"good {i}"))

    for code in BAD_FILES:
        await assert_quarantined(failed_dir, f"{code}.json", code)
    await wait_for(lambda: not json_files(events_dir), what="the good files")
    assert sorted(await titles_in_order()) == ["good 0", "good 1", "good 2"]
    assert len(await queued()) == 3


async def test_old_bad_files_waiting_at_start_are_quarantined_at_once(pipelines, events_dir, failed_dir):
    old = time.time() - 3600
    write_event(events_dir, "empty.json", b"", mtime=old)
    write_event(events_dir, "cut.json", b'{"type": "x", "ti', mtime=old)
    summary = await pipelines().ingest_waiting()

    assert summary.quarantined == 2
    await assert_quarantined(failed_dir, "empty.json", "empty")
    await assert_quarantined(failed_dir, "cut.json", "invalid_json")


async def test_quarantine_keeps_earlier_files_of_the_same_name(running, events_dir, failed_dir):
    write_event(events_dir, "same.json", b"[1]")
    await assert_quarantined(failed_dir, "same.json", "not_an_object")
    write_event(events_dir, "same.json", b"[2]")
    await wait_for((failed_dir / "same-1.json.error.json").exists, what="the second quarantine")
    assert (failed_dir / "same.json").read_bytes() == b"[1]"
    assert (failed_dir / "same-1.json").read_bytes() == b"[2]"


# --- files still being written, or vanishing --------------------------------------------------------------------


async def test_file_created_empty_then_filled_is_ingested_not_quarantined(
    running, events_dir, failed_dir, queued
):
    path = events_dir / "slow-writer.json"
    # No temp name: the file exists, empty, while the agent writes (kept open across the await on purpose).
    with open(path, "w") as handle:  # noqa: ASYNC230
        await asyncio.sleep(0.1)
        handle.write(json.dumps(event("written slowly")))

    await wait_for(lambda: not path.exists(), what="the slowly written file")
    assert await titles_in_order() == ["written slowly"]
    assert len(await queued()) == 1
    assert not failed_dir.exists()


async def test_burst_of_vanishing_files_does_not_disturb_the_watcher(running, events_dir, failed_dir, queued):
    def burst() -> None:
        for i in range(600):
            if i % 6 == 5:
                write_event(events_dir, f"good-{i}.json", event(f"good {i}"))
            else:
                path = events_dir / f"ghost-{i}.json"
                path.write_text(json.dumps(event(f"ghost {i}")))
                path.unlink(missing_ok=True)  # the pipeline may have been quicker

    await asyncio.to_thread(burst)

    async def all_good_stored():
        return await EventRow.objects.filter(title__startswith="good ").acount() == 100

    await wait_for(all_good_stored, what="the 100 good files")
    await wait_for(lambda: not json_files(events_dir), what="the folder to empty")
    assert not running._tasks[0].done() and not running._tasks[1].done()
    assert not failed_dir.exists()  # a file that vanished is not quarantined
    assert not await AuditEntry.objects.filter(action="event.quarantined").aexists()
    # A ghost read before its writer deleted it is a real event; every stored event is queued exactly once.
    assert sorted(await queued()) == sorted(
        [e async for e in EventRow.objects.values_list("event_id", flat=True)]
    )


# --- durability and backpressure -----------------------------------------------------------------------------


class FailingQueue:
    """The real queue, whose enqueues fail while ``failing`` is set."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.failing = True
        self.failures = 0

    def _fail(self) -> None:
        self.failures += 1
        raise QueueError("injected: the queue is down")

    async def enqueue_batch(self, entries):
        if self.failing:
            self._fail()
        return await self.inner.enqueue_batch(entries)

    async def enqueue_new_events(self, insert_rows):
        def insert_then_fail():
            # The rows are written, then the queue fails: inside the database queue's transaction (rolled back
            # with it), or on their own before a Redis enqueue (left behind, to be queued by a later attempt).
            insert_rows()
            self._fail()

        return await self.inner.enqueue_new_events(insert_then_fail if self.failing else insert_rows)

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def test_file_stays_until_its_queue_entry_is_durable(pipelines, make_queue, events_dir, queued):
    queue = FailingQueue(make_queue())
    pipeline = pipelines(queue=queue)
    pipeline.ingestor.retry_delay = 0.02
    await pipeline.start()
    path = write_event(events_dir, "important.json", event("must not be lost"))

    await wait_for(lambda: queue.failures >= 3, what="several failed attempts")
    assert path.exists()
    assert await queued() == []

    queue.failing = False
    await wait_for(lambda: not path.exists(), what="the file to be taken once the queue works")
    [row] = [r async for r in EventRow.objects.all()]
    assert row.title == "must not be lost"
    assert await queued() == [row.event_id]


class SlowStore:
    """The real store, slower than the watcher: files pile up in front of it."""

    def __init__(self, inner, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def store(self, events):
        await asyncio.sleep(self.delay)
        return await self.inner.store(events)


FLOOD_WRITER = """
import json, os, sys
folder, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    name = f"flood-{i:05}.json"
    tmp = os.path.join(folder, f".{name}.tmp")
    with open(tmp, "w") as handle:
        json.dump({"type": "task_completion", "title": f"flood {i}"}, handle)
    os.rename(tmp, os.path.join(folder, name))
"""


async def test_flood_is_bounded_by_capacity_and_fully_ingested(pipelines, events_dir, queued):
    capacity, files = 10, 5000
    await set_bridge_settings(pipeline_capacity=capacity, backpressure_threshold=80)
    pipeline = pipelines()
    pipeline.ingestor.store = SlowStore(pipeline.store, delay=0.001)
    modes: list[str] = []
    pipeline.source.on_mode = modes.append
    await pipeline.start()
    assert pipeline.paths.maxsize == capacity
    await wait_for(lambda: "watch" in modes, what="watch mode")

    most_queued = most_in_flight = 0
    sampling = True

    async def sample() -> None:
        nonlocal most_queued, most_in_flight
        while sampling:
            most_queued = max(most_queued, pipeline.paths.qsize())
            most_in_flight = max(most_in_flight, len(pipeline.source.in_flight))
            await asyncio.sleep(0.001)

    sampler = asyncio.create_task(sample())

    # Another process, as agents are: a writer thread here would compete with the pipeline for the GIL.
    writer = await asyncio.create_subprocess_exec(sys.executable, "-c", FLOOD_WRITER, events_dir, str(files))
    assert await writer.wait() == 0

    async def all_stored():
        return not json_files(events_dir) and await EventRow.objects.acount() == files

    await wait_for(all_stored, within=120, what=f"{files} events")
    sampling = False
    await sampler
    assert len(await queued()) == files
    assert most_queued <= capacity
    # What is held in memory is the paths queue plus the batch being stored, whatever the flood's size.
    assert most_in_flight <= 2 * capacity + 1
    assert "sweep" in modes[modes.index("watch") :]  # the flood sent the watcher back to sweeping


async def test_stop_drains_what_was_read(pipelines, events_dir, queued):
    pipeline = pipelines()
    pipeline.ingestor.store = SlowStore(pipeline.store, delay=0.05)
    await pipeline.start()
    for i in range(20):
        write_event(events_dir, f"drain-{i}.json", event(f"drain {i}"))
    await wait_for(lambda: pipeline.ingestor.busy, what="the ingestor to start")
    await pipeline.stop()

    stored = await EventRow.objects.acount()
    assert len(json_files(events_dir)) == 20 - stored  # every file is either stored or still there
    assert stored > 0


# --- SQLite's write-ahead log, checkpointed off the ingest path ------------------------------------------------


def sqlite_writer(path: Path) -> sqlite3.Connection:
    """A connection that never checkpoints by itself: only the checkpointer keeps its log short."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE IF NOT EXISTS rows (body TEXT)")
    return writer


async def test_checkpointer_keeps_the_log_from_growing_after_writes(tmp_path):
    path = tmp_path / "wal.sqlite3"
    writer = sqlite_writer(path)
    checkpointer = WalCheckpointer(str(path), interval=0.001)
    checkpointer.start()
    sizes = []
    try:
        for _ in range(5):
            done = checkpointer.checkpoints
            for _ in range(50):
                writer.execute("INSERT INTO rows VALUES (?)", ("x" * 3000,))
            checkpointer.wrote()
            await wait_for(lambda done=done: checkpointer.checkpoints > done, what="a checkpoint")
            sizes.append(path.with_name("wal.sqlite3-wal").stat().st_size)
    finally:
        checkpointer.stop()
        writer.close()
    # Each round's commits start the log over once the previous round was checkpointed: it stays the size of
    # one round instead of growing by one round each time.
    assert sizes[-1] < 2 * sizes[0]


async def test_checkpointer_checkpoints_what_was_written_when_stopped(tmp_path):
    path = tmp_path / "wal.sqlite3"
    writer = sqlite_writer(path)
    checkpointer = WalCheckpointer(str(path), interval=3600)  # only stopping cuts the wait short
    checkpointer.start()
    writer.execute("INSERT INTO rows VALUES ('last')")
    checkpointer.wrote()
    checkpointer.stop()
    writer.close()
    assert checkpointer.checkpoints == 1


async def test_the_ingestor_checkpoints_only_an_sqlite_file_database(pipelines, events_dir):
    pipeline = pipelines()
    await pipeline.start()
    write_event(events_dir, "one.json", event("one"))
    await wait_for(lambda: not json_files(events_dir), what="the file to be stored")
    checkpointer = pipeline.ingestor.checkpointer
    if connection.vendor == "sqlite":
        await wait_for(lambda: checkpointer.checkpoints >= 1, what="a checkpoint after the store")
    else:
        assert checkpointer is None  # PostgreSQL keeps its own log
    await pipeline.stop()
    assert pipeline.ingestor.checkpointer is None


# --- commands ------------------------------------------------------------------------------------------------


@pytest.fixture
def command_backend(backend, folders, redis_url):
    """Point get_queue() at the backend under test; ``entries()`` reads its queue synchronously."""
    if backend == "database":
        folders.REDIS_URL = None
        yield lambda: list(QueueEntry.objects.order_by("pk").values_list("event__event_id", flat=True))
        return
    folders.REDIS_URL = redis_url
    queue = get_queue()  # only for its key names: the commands make their own
    asyncio.run(queue.close())
    client = redis.Redis.from_url(redis_url)

    def entries() -> list[str]:
        return in_stream_order([e for lane in LANES for e in client.xrange(queue.lane_key(lane))])

    yield entries
    keys = list(client.scan_iter(match=f"{queue.prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_send_event_creates_event_and_queue_entry(command_backend):
    out = io.StringIO()
    call_command("send_event", "task_completion", "Build done", data='{"status": "completed"}', stdout=out)

    row = EventRow.objects.get()
    assert (row.type, row.title, row.origin, row.data) == (
        "task_completion",
        "Build done",
        "shell",
        {"status": "completed"},
    )
    assert command_backend() == [row.event_id]
    assert f"queued task_completion {row.event_id}" in out.getvalue()


def test_send_event_twice_makes_two_events(command_backend):
    for _ in range(2):
        call_command("send_event", "task_completion", "Same text", stdout=io.StringIO())
    ids = list(EventRow.objects.order_by("pk").values_list("event_id", flat=True))
    assert len(set(ids)) == 2
    assert command_backend() == ids


def test_send_event_options_reach_the_event(command_backend):
    call_command(
        "send_event",
        "approval_request",
        "Deploy?",
        description="to production",
        source="ci",
        task_id="T-7",
        data='{"approval_prompt": "Ship it?"}',
        stdout=io.StringIO(),
    )
    row = EventRow.objects.get()
    assert (row.description, row.source, row.task_id, row.priority) == (
        "to production",
        "ci",
        "T-7",
        Priority.URGENT,
    )
    assert command_backend() == [row.event_id]


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (("task_completion", "Build done"), {"data": "{not json"}, "--data is not valid JSON"),
        (("task_completion", "Build done"), {"data": "[1, 2]"}, "event refused (wrong_type)"),
        (("Not A Type", "Build done"), {}, "event refused (wrong_type): field 'type'"),
        (("task_completion", "x" * 201), {}, "event refused (too_long)"),
    ],
)
def test_send_event_refuses_bad_input_clearly(command_backend, args, options, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("send_event", *args, stdout=io.StringIO(), **options)
    assert not EventRow.objects.exists()
    assert command_backend() == []


def test_run_bridge_once_no_send_ingests_waiting_files_and_exits(command_backend, events_dir, monkeypatch):
    # Ingest only must not need the sender (python-telegram-bot) at all.
    monkeypatch.setitem(sys.modules, "bridge.telegram.send", None)
    monkeypatch.setitem(sys.modules, "bridge.worker", None)
    now = time.time()
    write_event(events_dir, "second.json", event("second"), mtime=now - 20)
    write_event(events_dir, "first.json", event("first"), mtime=now - 30)
    write_event(events_dir, "again.json", event("first"), mtime=now - 10)  # same bytes as first.json
    write_event(events_dir, "broken.json", b"{", mtime=now - 40)
    (events_dir / "notes.txt").write_text("not an event")

    out = io.StringIO()
    call_command("run_bridge", "--once", "--no-send", stdout=out)

    assert out.getvalue().strip() == "stored 2, duplicates 1, quarantined 1"
    assert sorted(os.listdir(events_dir)) == [FAILED_DIR_NAME, "notes.txt"]
    assert list(EventRow.objects.order_by("pk").values_list("title", flat=True)) == ["first", "second"]
    assert command_backend() == list(EventRow.objects.order_by("pk").values_list("event_id", flat=True))
    assert AuditEntry.objects.filter(action="event.quarantined", object_id="broken.json").exists()


# --- one event at a time (MCP tools, the shell) ----------------------------------------------------------------


async def test_a_submitted_event_is_stored_and_queued_in_one_step_and_an_explicit_id_once(make_queue, queued):
    from bridge.ingest.store import EventStore
    from bridge.ingest.submit import submit

    store = EventStore(make_queue())
    first, stored = await submit(store, event("from a tool"), origin="mcp")
    again, repeated = await submit(store, event("from a tool"), origin="mcp")
    assert first.event_id != again.event_id, "each call is a new event"
    assert not stored.duplicate and not repeated.duplicate
    explicit = {**event("pinned"), "event_id": "pinned-1"}
    _, pinned = await submit(store, explicit, origin="mcp")
    _, pinned_again = await submit(store, explicit, origin="mcp")
    assert (pinned.duplicate, pinned_again.duplicate) == (False, True)
    assert pinned.pk == pinned_again.pk
    assert await queued() == [first.event_id, again.event_id, "pinned-1"]
    assert await EventRow.objects.filter(origin="mcp").acount() == 3
