"""One behavioural suite for both durable queue backends: the database (the configured Django database) and Redis
Streams (REDIS_URL, or the throwaway server scripts/run-tests starts, under a key prefix of its own per test)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from django.db import connection
from django.utils import timezone

from bridge.compression import Compressor
from bridge.events.priority import Priority
from bridge.models import Event, QueueEntry
from bridge.queue import get_queue
from bridge.queue.base import DurableQueue, NewEntry
from bridge.queue.database import DatabaseQueue
from bridge.queue.redis_streams import RedisStreamsQueue
from tests.processes import child_database_url

# As tests/conftest.py's redis_url: REDIS_URL in CI, else the throwaway server scripts/run-tests starts.
REDIS_URL = os.environ.get("REDIS_URL") or os.environ.get("CC_TELEGRAM_TEST_REDIS_URL", "")
ROOT = Path(__file__).resolve().parent.parent
_pks = itertools.count(1)


@pytest.fixture(params=[pytest.param("database", marks=pytest.mark.django_db(transaction=True)), "redis"])
def backend(request) -> str:
    # transaction=True: the queue works on other threads' connections, which must see committed rows.
    return request.param


@pytest.fixture
def prefix() -> str:
    return f"test:queue:{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_queue(backend, prefix):
    """Queues on the backend under test, closed (and for Redis, their keys deleted) afterwards."""
    made: list[DurableQueue] = []

    def make(**options) -> DurableQueue:
        options.setdefault("compressor", Compressor(level=3, min_bytes=1024))
        if backend == "redis":
            queue = RedisStreamsQueue.from_url(REDIS_URL, prefix=prefix, **options)
        else:
            queue = DatabaseQueue(poll_interval=0.05, **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.close()
    if backend == "redis":
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
def queue(make_queue) -> DurableQueue:
    return make_queue()


@pytest.fixture
def new_entries(backend):
    """``await new_entries(n, lane=..., size=...)``: entries for fresh events (rows in the database backend)."""

    async def make(n: int, *, lane: int = Priority.NORMAL, size: int = 200) -> list[NewEntry]:
        event_ids = [f"evt-{uuid.uuid4().hex}" for _ in range(n)]
        if backend == "database":
            events = await Event.objects.abulk_create(
                Event(
                    event_id=event_id,
                    type="task_completed",
                    category="task_management",
                    title=event_id,
                    timestamp=timezone.now(),
                )
                for event_id in event_ids
            )
            pks = [event.pk for event in events]
        else:
            pks = [next(_pks) for _ in event_ids]
        return [
            NewEntry(pk, event_id, lane, payload_for(event_id, size))
            for pk, event_id in zip(pks, event_ids, strict=True)
        ]

    return make


def payload_for(event_id: str, size: int) -> bytes:
    head = f'{{"event_id": "{event_id}", "type": "task_completed", "log": "'.encode()
    body = (b"test_module.py::test_case PASSED\\n" * (size // 34 + 1))[: max(size - len(head) - 2, 0)]
    return head + body + b'"}'


async def stored_form(queue: DurableQueue, entry_id: str, lane: int) -> tuple[bytes, bool]:
    """The payload as the backend keeps it (bytes, compressed?)."""
    if isinstance(queue, RedisStreamsQueue):
        [(_, fields)] = await queue.redis.xrange(queue.lane_key(lane), entry_id, entry_id)
        return fields[b"p"], fields[b"z"] == b"1"
    row = await QueueEntry.objects.aget(pk=int(entry_id))
    return bytes(row.payload), row.compressed


# --- enqueue and claim -------------------------------------------------------------------------------------------


async def test_enqueued_entry_is_claimed_with_its_payload(queue, new_entries):
    [entry] = await new_entries(1)
    [entry_id] = await queue.enqueue_batch([entry])
    assert entry_id

    [claimed] = await queue.claim("worker-1", 10)

    assert claimed.entry_id == entry_id
    assert (claimed.event_pk, claimed.event_id, claimed.lane) == (entry.event_pk, entry.event_id, entry.lane)
    assert claimed.payload == entry.payload
    assert claimed.deliveries == 1
    assert await queue.claim("worker-2", 10) == []


async def test_claimed_entry_says_when_its_event_was_accepted(queue, new_entries):
    before = time.time()
    [entry] = await new_entries(1)
    await queue.enqueue_batch([entry])
    [claimed] = await queue.claim("worker-1", 1)
    assert before - 1 <= claimed.enqueued_at <= time.time() + 1


async def test_urgent_lane_is_claimed_before_normal_whatever_the_insertion_order(queue, new_entries):
    low = await new_entries(1, lane=Priority.LOW)
    normal = await new_entries(2, lane=Priority.NORMAL)
    urgent = await new_entries(1, lane=Priority.URGENT)
    high = await new_entries(1, lane=Priority.HIGH)
    await queue.enqueue_batch(low + normal)
    await queue.enqueue_batch(urgent + high)

    first = await queue.claim("worker", 2)
    rest = await queue.claim("worker", 10)

    assert [c.event_id for c in first] == [urgent[0].event_id, high[0].event_id]
    assert [c.lane for c in rest] == [Priority.NORMAL, Priority.NORMAL, Priority.LOW]


async def test_duplicate_event_id_is_not_enqueued_twice(queue, new_entries):
    a, b = await new_entries(2)

    first = await queue.enqueue_batch([a, a, b])
    again = await queue.enqueue_batch([b])

    assert first[0] and first[2] and first[1] is None
    assert again == [None]
    claimed = await queue.claim("worker", 10)
    assert sorted(c.event_id for c in claimed) == sorted([a.event_id, b.event_id])


async def test_empty_batch_is_a_no_op(queue):
    assert await queue.enqueue_batch([]) == []
    assert await queue.claim("worker", 0) == []


def test_unknown_lane_is_refused():
    with pytest.raises(ValueError, match="lane"):
        NewEntry(1, "evt", 7, b"{}")


# --- ack, retry, dead letters ------------------------------------------------------------------------------------


async def test_ack_removes_the_entry_for_good(make_queue, new_entries):
    queue = make_queue(visibility_timeout=0.2)
    await queue.enqueue_batch(await new_entries(2))
    claimed = await queue.claim("worker", 10)

    await queue.ack(claimed)
    await asyncio.sleep(0.3)

    assert await queue.reclaim_stale("other") == []
    assert await queue.claim("other", 10) == []
    assert sum((await queue.depth()).values()) == 0


async def test_ack_writes_the_callers_record_first_and_acks_nothing_when_it_fails(queue, new_entries):
    await queue.enqueue_batch(await new_entries(2))
    claimed = await queue.claim("worker-1", 10)

    def record_fails() -> None:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        await queue.ack(claimed, after=record_fails)
    assert sum((await queue.depth()).values()) == 2

    recorded: list[int] = []
    await queue.ack(claimed, after=lambda: recorded.append(len(claimed)))
    assert recorded == [2]
    assert sum((await queue.depth()).values()) == 0
    await queue.ack([], after=lambda: recorded.append(0))  # nothing to ack: the record is still written
    assert recorded == [2, 0]


async def test_claim_then_hands_what_was_claimed_to_then(queue, new_entries):
    await queue.enqueue_batch(await new_entries(3))
    seen: list[int] = []

    claimed, result = await queue.claim_then("worker-1", 10, lambda items: seen.append(len(items)) or "taken")
    assert (len(claimed), result, seen) == (3, "taken", [3])

    claimed, result = await queue.claim_then("worker-1", 10, lambda items: seen.append(len(items)))
    assert (claimed, result, seen) == ([], None, [3])  # nothing claimed: ``then`` does not run


async def test_claim_then_keeps_the_claim_when_then_fails_in_the_database(queue, new_entries):
    from django.db import connection

    await queue.enqueue_batch(await new_entries(3))

    def failing(items):
        with connection.cursor() as cursor:  # on PostgreSQL this aborts the transaction it runs in
            cursor.execute("SELECT no_such_column FROM bridge_event")

    with pytest.raises(Exception):  # noqa: B017 - whatever it is (the Redis tests have no database access)
        await queue.claim_then("worker-1", 10, failing)

    assert await queue.claim("worker-2", 10) == []  # still held by worker-1's claim
    assert sum((await queue.depth()).values()) == 3


async def test_retry_later_hides_the_entry_until_due_then_redelivers_it(queue, new_entries):
    [entry] = await new_entries(1)
    await queue.enqueue_batch([entry])
    [first] = await queue.claim("worker", 1)

    assert await queue.retry_later(first, 0.3, "429 Too Many Requests")
    assert await queue.claim("worker", 1) == []
    await asyncio.sleep(0.4)
    [again] = await queue.claim("worker", 1)

    assert again.event_id == entry.event_id
    assert again.payload == entry.payload
    assert again.deliveries == 2


async def test_blocking_claim_waits_for_a_retry_to_come_due(queue, new_entries):
    await queue.enqueue_batch(await new_entries(1))
    [first] = await queue.claim("worker", 1)
    await queue.retry_later(first, 0.3, "timeout")

    [again] = await queue.claim("worker", 1, block_ms=3000)

    assert again.deliveries == 2


async def test_dead_letter_keeps_payload_and_reason_out_of_circulation(queue, new_entries):
    [entry] = await new_entries(1, lane=Priority.HIGH)
    await queue.enqueue_batch([entry])
    [claimed] = await queue.claim("worker", 1)

    assert await queue.dead_letter(claimed, "403 bot was blocked by the user")

    assert await queue.claim("worker", 1) == []
    assert await queue.depth() == {3: 0, 2: 0, 1: 0, 0: 0}
    [dead] = await queue.dead_letters(10)
    assert (dead.event_pk, dead.event_id, dead.lane) == (entry.event_pk, entry.event_id, Priority.HIGH)
    assert dead.payload == entry.payload
    assert dead.reason == "403 bot was blocked by the user"
    assert dead.deliveries == 1


async def test_entry_reclaimed_more_than_max_deliveries_is_dead_lettered(make_queue, new_entries):
    queue = make_queue(visibility_timeout=0.2, max_deliveries=2)
    await queue.enqueue_batch(await new_entries(1))
    [first] = await queue.claim("crashy-1", 1)
    await asyncio.sleep(0.25)
    [second] = await queue.reclaim_stale("crashy-2")
    await asyncio.sleep(0.25)

    assert await queue.reclaim_stale("crashy-3") == []

    assert (first.deliveries, second.deliveries) == (1, 2)
    [dead] = await queue.dead_letters(10)
    assert dead.event_id == first.event_id
    assert "max_deliveries=2" in dead.reason
    assert sum((await queue.depth()).values()) == 0


async def test_entry_retried_more_than_max_deliveries_is_dead_lettered(make_queue, new_entries):
    queue = make_queue(max_deliveries=2)
    await queue.enqueue_batch(await new_entries(1))
    for _ in range(2):
        [item] = await queue.claim("worker", 1)
        await queue.retry_later(item, 0, "500 Internal Server Error")

    assert await queue.claim("worker", 1) == []
    [dead] = await queue.dead_letters(10)
    assert dead.deliveries == 3
    assert "max_deliveries=2" in dead.reason


async def test_requeue_dead_puts_dead_letters_back_with_a_fresh_delivery_count(queue, new_entries):
    entries = await new_entries(3, lane=Priority.URGENT)
    await queue.enqueue_batch(entries)
    for item in await queue.claim("worker", 3):
        await queue.dead_letter(item, "chat not found")
    dead = await queue.dead_letters(10)
    assert len(dead) == 3

    assert await queue.requeue_dead([dead[0].entry_id]) == 1
    assert await queue.requeue_dead() == 2
    assert await queue.dead_letters(10) == []
    assert await queue.requeue_dead() == 0

    claimed = await queue.claim("worker", 10)
    assert sorted(c.event_id for c in claimed) == sorted(e.event_id for e in entries)
    assert {c.deliveries for c in claimed} == {1}
    assert {c.payload for c in claimed} == {e.payload for e in entries}


# --- crashed consumers -------------------------------------------------------------------------------------------


async def test_stale_claim_is_reclaimed_by_another_consumer_only_after_the_visibility_timeout(
    make_queue, new_entries
):
    queue = make_queue(visibility_timeout=0.5)
    entries = await new_entries(3)
    await queue.enqueue_batch(entries)
    crashed = await queue.claim("crashed", 2)

    assert await queue.reclaim_stale("rescuer") == []
    await asyncio.sleep(0.6)
    rescued = await queue.reclaim_stale("rescuer")

    assert {c.entry_id for c in rescued} == {c.entry_id for c in crashed}
    assert {c.deliveries for c in rescued} == {2}
    assert {c.payload for c in rescued} == {c.payload for c in crashed}
    # The third entry was never claimed: it is for claim(), not for reclaim_stale().
    [untouched] = await queue.claim("rescuer", 10)
    assert untouched.event_id == entries[2].event_id


async def test_extended_claim_is_not_reclaimed_while_its_holder_works_on_it(make_queue, new_entries):
    queue = make_queue(visibility_timeout=0.5)
    entries = await new_entries(2)
    await queue.enqueue_batch(entries)
    held = await queue.claim("slow", 2)

    for _ in range(3):
        await asyncio.sleep(0.3)
        assert await queue.extend("slow", held) == 2
        assert await queue.reclaim_stale("rescuer") == []

    await asyncio.sleep(0.6)
    rescued = await queue.reclaim_stale("rescuer")
    assert {c.entry_id for c in rescued} == {c.entry_id for c in held}
    # The slow holder lost them: it can no longer extend them from under the rescuer.
    assert await queue.extend("slow", held) == 0


async def test_stale_holder_cannot_retry_or_bury_an_entry_reclaimed_by_another(make_queue, new_entries):
    queue = make_queue(visibility_timeout=0.2)
    await queue.enqueue_batch(await new_entries(1))
    [stale] = await queue.claim("slow", 1)
    await asyncio.sleep(0.25)
    [current] = await queue.reclaim_stale("fast")

    assert not await queue.retry_later(stale, 0, "late failure")
    assert not await queue.dead_letter(stale, "late failure")
    assert await queue.dead_letters(10) == []
    await queue.ack([current])
    assert sum((await queue.depth()).values()) == 0


CHILD = """
import asyncio, os, sys
backend, prefix, count, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
if backend == "database":
    import django
    django.setup()
    from bridge.queue.database import DatabaseQueue
    queue = DatabaseQueue(visibility_timeout=timeout)
else:
    from bridge.queue.redis_streams import RedisStreamsQueue
    queue = RedisStreamsQueue.from_url(os.environ["QUEUE_REDIS_URL"], prefix=prefix, visibility_timeout=timeout)

async def main():
    claimed = await queue.claim("doomed", count)
    print(" ".join(item.entry_id for item in claimed), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_consumer_killed_between_claim_and_ack_loses_nothing(backend, make_queue, new_entries, prefix):
    """A real crash: a child process claims entries and is SIGKILLed before it acks them."""
    timeout = 2.0
    queue = make_queue(visibility_timeout=timeout)
    entries = await new_entries(5, lane=Priority.HIGH)
    await queue.enqueue_batch(entries)
    env = {**os.environ, "QUEUE_REDIS_URL": REDIS_URL, "DJANGO_SETTINGS_MODULE": "cctelegram.settings"}
    if backend == "database":
        env["DATABASE_URL"] = child_database_url()
    child = subprocess.Popen(  # noqa: ASYNC220  (started once; its output is read off the loop)
        [sys.executable, "-c", CHILD, backend, prefix, "3", str(timeout)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), timeout=30)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    claimed_by_child = set(line.split())
    killed_at = time.monotonic()
    assert len(claimed_by_child) == 3

    assert await queue.reclaim_stale("rescuer") == []  # not before the visibility timeout
    await asyncio.sleep(timeout - (time.monotonic() - killed_at) + 0.1)
    rescued = await queue.reclaim_stale("rescuer")

    assert {c.entry_id for c in rescued} == claimed_by_child
    assert {c.deliveries for c in rescued} == {2}
    by_event = {e.event_id: e.payload for e in entries}
    assert all(c.payload == by_event[c.event_id] for c in rescued)
    await queue.ack(rescued)
    assert len(await queue.claim("rescuer", 10)) == 2


# --- depth, compression, concurrency -----------------------------------------------------------------------------


async def test_depth_counts_waiting_claimed_and_delayed_entries_per_lane(queue, new_entries):
    await queue.enqueue_batch(
        await new_entries(2, lane=Priority.NORMAL) + await new_entries(1, lane=Priority.URGENT)
    )
    assert await queue.depth() == {3: 1, 2: 0, 1: 2, 0: 0}

    urgent, normal = await queue.claim("worker", 2)
    assert await queue.depth() == {3: 1, 2: 0, 1: 2, 0: 0}

    await queue.ack([urgent])
    await queue.retry_later(normal, 60, "flood wait")
    assert await queue.depth() == {3: 0, 2: 0, 1: 2, 0: 0}

    [other] = await queue.claim("worker", 10)
    await queue.dead_letter(other, "bad request")
    assert await queue.depth() == {3: 0, 2: 0, 1: 1, 0: 0}


async def test_large_payload_is_stored_compressed_and_round_trips(make_queue, new_entries):
    queue = make_queue(compressor=Compressor(level=3, min_bytes=1024))
    [big] = await new_entries(1, size=50_000)
    [small] = await new_entries(1, size=300)
    big_id, small_id = await queue.enqueue_batch([big, small])

    big_stored, big_compressed = await stored_form(queue, big_id, big.lane)
    small_stored, small_compressed = await stored_form(queue, small_id, small.lane)
    claimed = {c.event_id: c.payload for c in await queue.claim("worker", 10)}

    assert big_compressed and len(big_stored) < len(big.payload) / 4
    assert not small_compressed and small_stored == small.payload
    assert claimed == {big.event_id: big.payload, small.event_id: small.payload}


async def test_concurrent_claimers_never_get_the_same_entry(backend, make_queue, new_entries):
    # Threads of their own, so that the database claims really run at the same time on several connections.
    options = {"threads": 2} if backend == "database" else {}
    queues = [make_queue(**options), make_queue(**options)]
    entries = await new_entries(1000)
    await queues[0].enqueue_batch(entries)

    async def drain(queue: DurableQueue, consumer: str) -> list[str]:
        got: list[str] = []
        while batch := await queue.claim(consumer, 25):
            got += [c.entry_id for c in batch]
        return got

    a, b = await asyncio.gather(drain(queues[0], "a"), drain(queues[1], "b"))

    assert len(a) + len(b) == 1000
    assert set(a).isdisjoint(b)
    if backend == "redis" or connection.vendor == "postgresql":
        # Both really claimed side by side. SQLite has one writer at a time, and its busy handler's growing sleeps
        # can leave one connection waiting until the other has drained everything: there, only the two above.
        assert a and b


# --- blocking claims ---------------------------------------------------------------------------------------------


async def test_blocking_claim_wakes_when_an_entry_arrives(make_queue, new_entries):
    consumer_side, producer_side = make_queue(), make_queue()
    [entry] = await new_entries(1, lane=Priority.LOW)
    await consumer_side.depth()  # connections and consumer groups ready before timing

    started = time.monotonic()
    waiting = asyncio.create_task(consumer_side.claim("worker", 5, block_ms=10_000))
    await asyncio.sleep(0.1)
    await producer_side.enqueue_batch([entry])
    claimed = await asyncio.wait_for(waiting, timeout=10)

    assert [c.event_id for c in claimed] == [entry.event_id]
    assert time.monotonic() - started < 5  # woken by the entry, not by the end of the wait


async def test_blocking_claim_gives_up_after_block_ms(queue):
    started = time.monotonic()
    assert await queue.claim("worker", 5, block_ms=200) == []
    assert time.monotonic() - started >= 0.2


# --- Redis specifics ---------------------------------------------------------------------------------------------


@pytest.fixture
async def redis_queue(prefix):
    queue = RedisStreamsQueue.from_url(
        REDIS_URL, prefix=prefix, compressor=Compressor(level=3, min_bytes=1024)
    )
    yield queue
    keys = [key async for key in queue.redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await queue.redis.delete(*keys)
    await queue.close()


async def test_redis_queue_recreates_consumer_groups_lost_by_redis(redis_queue):
    await redis_queue.enqueue_batch([NewEntry(1, "evt-before", Priority.NORMAL, b"{}")])
    await redis_queue.redis.delete(*(redis_queue.lane_key(lane) for lane in Priority))

    await redis_queue.enqueue_batch([NewEntry(2, "evt-after", Priority.NORMAL, b"{}")])
    [claimed] = await redis_queue.claim("worker", 10)

    assert claimed.event_id == "evt-after"


async def test_redis_dedup_key_expires(redis_queue):
    await redis_queue.enqueue_batch([NewEntry(1, "evt-ttl", Priority.NORMAL, b"{}")])
    ttl = await redis_queue.redis.ttl(redis_queue.dedup_key("evt-ttl"))
    assert 0 < ttl <= redis_queue.dedup_ttl


def test_redis_client_decoding_responses_is_refused():
    with pytest.raises(ValueError, match="decode_responses"):
        RedisStreamsQueue(aioredis.Redis.from_url(REDIS_URL, decode_responses=True))


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of our own, which the test may restart (the shared one must not be)."""
    import shutil
    import socket

    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("this test starts a redis-server of its own: install the redis-server package")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--dir",
        str(tmp_path),
    ]

    def start() -> subprocess.Popen:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return process
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("private redis-server did not start")

    state = {"process": start()}

    def restart() -> None:
        state["process"].terminate()
        state["process"].wait()
        state["process"] = start()

    yield f"redis://127.0.0.1:{port}/0", restart
    state["process"].terminate()
    state["process"].wait()


async def test_redis_queue_rides_out_a_redis_restart(private_redis):
    url, restart = private_redis
    queue = RedisStreamsQueue.from_url(url, prefix="restart")
    try:
        await queue.enqueue_batch([NewEntry(1, "evt-1", Priority.URGENT, b'{"n": 1}')])
        await asyncio.to_thread(restart)

        [claimed] = await queue.claim("worker", 10)
        await queue.ack([claimed])

        assert claimed.payload == b'{"n": 1}'
        assert await queue.depth() == {3: 0, 2: 0, 1: 0, 0: 0}
    finally:
        await queue.close()


# --- choosing the backend ----------------------------------------------------------------------------------------


async def test_get_queue_uses_redis_when_redis_url_is_set(settings):
    settings.REDIS_URL = REDIS_URL
    queue = get_queue(visibility_timeout=5)
    try:
        assert isinstance(queue, RedisStreamsQueue)
        assert queue.visibility_timeout == 5
    finally:
        await queue.close()


async def test_get_queue_uses_the_database_without_redis(settings):
    settings.REDIS_URL = ""
    compressor = Compressor(level=5)
    queue = get_queue(compressor=compressor)
    assert isinstance(queue, DatabaseQueue)
    assert queue.compressor is compressor
