"""The sender: claimed queue entries -> deliveries -> per-chat outboxes -> Telegram, within the rate limits.

Contract with the stages around it: the transport either returns or raises TransportError saying whether the
failure is permanent; the sender decides what follows (retry with backoff, wait out a 429, follow a chat migration,
dead-letter) and records every outcome before the queue entry is acked, so a crash at any point resends at most
what was not yet recorded as sent. A message split in parts has the parts already out recorded before it is tried
again, so that its retry, by this worker or the next, sends only the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async

from bridge import deliveries, metrics
from bridge.cache import TieredCache, build_cache
from bridge.events.schema import Event
from bridge.models import Approval, AuditEntry, Delivery
from bridge.queue.base import Claimed, DurableQueue
from bridge.replies.approvals import ensure_approval, remember_message
from bridge.routing import Target, route
from bridge.telegram.breaker import CircuitBreaker
from bridge.telegram.escape import PARSE_MODE, escape_html
from bridge.telegram.format import render, render_digest
from bridge.telegram.ledger import Ledger, until_done
from bridge.telegram.limits import RateLimiter, RateLimits
from bridge.telegram.outbox import Job, Outbox
from bridge.telegram.transport import TelegramTransport, TransportError

logger = logging.getLogger(__name__)

# Sends in flight at once per worker (and so connections used), at most. Telegram's own limit, 30 messages a
# second, needs about 3 at a 100 ms round trip, 8 at 250 ms. The transport's own keep-alive pool (wire.py) costs
# the same CPU per send at 16 in flight as at 4 (~0.16 ms against the emulator); httpx, used instead behind a proxy,
# probes every idle pooled connection per request (1.4 ms of CPU per send at 4, 2.3 ms at 16).
MAX_IN_FLIGHT = 8

# Seconds a send may leave after its rate-limit slot, waiting for a place in flight; later, it takes a new slot.
# Half the limiter's default safety margin, which covers the rest of the way to Telegram.
_LATE_SLOT = 0.025

# Under load the sender looks for a dead worker's entries this often (seconds); whenever the queue has nothing
# new for it, at once.
_RECLAIM_EVERY = 1.0

# Rendering a large event (splitting it into parts) takes tens to hundreds of milliseconds: off the event loop.
_RENDER_IN_THREAD_BYTES = 64 * 1024


@dataclass
class SendSettings:
    """The BridgeSettings knobs the sender reads; replaced as a whole when an operator changes them."""

    mode: str = "local"
    style: str = "concise"
    timezone: str = "UTC"
    digest_threshold: int = 10
    retry_attempts: int = 5
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0
    capacity: int = 100
    batch_size: int = 100
    targets_ttl: float = 5.0
    approval_timeout: int = 600


@dataclass
class TakenIn:
    """Claimed entries taken in on the database thread: parsed ones, unreadable ones (with why), and per event
    the deliveries still to send."""

    parsed: list[tuple[Claimed, Event]] = field(default_factory=list)
    unreadable: list[tuple[Claimed, str]] = field(default_factory=list)
    pending: dict[int, list[deliveries.Pending]] = field(default_factory=dict)


@dataclass(eq=False)
class EntryTracker:
    """A claimed queue entry and how many of its deliveries are still open.

    ``parts_sent``: per delivery of a message split in parts, the ids of the parts already out (None while no
    delivery of the entry has any), so that a retry sends only the rest."""

    item: Claimed
    event: Event
    open: int
    approval: Approval | None = None
    parts_sent: dict[int, tuple[int, ...]] | None = None

    def parts_of(self, delivery_pk: int) -> tuple[int, ...]:
        return self.parts_sent.get(delivery_pk, ()) if self.parts_sent else ()

    def note_parts(self, delivery_pk: int, message_ids: tuple[int, ...]) -> None:
        if self.parts_sent is None:
            self.parts_sent = {}
        self.parts_sent[delivery_pk] = message_ids


class Sender:
    def __init__(
        self,
        queue: DurableQueue,
        transport: TelegramTransport,
        limiter: RateLimiter,
        breaker: CircuitBreaker,
        *,
        consumer: str,
        settings: SendSettings | None = None,
        cache: TieredCache | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.queue = queue
        self.transport = transport
        self.limiter = limiter
        self.breaker = breaker
        self.consumer = consumer
        self.settings = settings or SendSettings()
        self.outboxes: dict[int, Outbox] = {}
        self._drainers: dict[int, asyncio.Task] = {}
        self._open_entries: set[EntryTracker] = set()
        # The same trackers by queue entry: (lane, entry id), since each Redis lane is a stream of its own and two
        # streams can hand out the same id.
        self._by_entry: dict[tuple[int, str], EntryTracker] = {}
        self._room = asyncio.Condition()
        self.cache = cache or TieredCache()
        self._tasks: set[asyncio.Task] = set()
        self._running = False
        self._lease_keeper: asyncio.Task | None = None
        self._next_reclaim = 0.0
        self.ledger = Ledger(queue, self._closed)
        # Sends in flight at once, across chats (see MAX_IN_FLIGHT): a chat waits here, not in the HTTP pool.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self.listeners: list = []  # callables(dict) told about every outcome (the dashboard)

    # --- life cycle --------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Sign in to the Bot API, waiting out network trouble; raises TransportError for a bad token."""
        delay = 0.1
        while True:
            try:
                await self.transport.start()
                break
            except TransportError as error:
                if error.permanent:
                    raise
                logger.warning("Bot API not reachable (%s); retrying in %.1f s", error.reason, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self._lease_keeper = asyncio.create_task(self._keep_leases(), name="lease keeper")
        await self._current_targets()  # warm the cache before the first event arrives

    async def close(self) -> None:
        if self._lease_keeper is not None:
            self._lease_keeper.cancel()
            self._lease_keeper = None
        await self.ledger.close()
        await self.transport.close()

    async def _keep_leases(self) -> None:
        """Entries held while their chats wait out rate limits must not look abandoned to other workers."""
        period = max(0.5, self.queue.visibility_timeout / 3)
        while True:
            await asyncio.sleep(period)
            held = [tracker.item for tracker in self._open_entries]
            if held:
                try:
                    await self.queue.extend(self.consumer, held)
                except Exception:
                    logger.warning("could not renew %d leases; retrying in %.1f s", len(held), period)

    async def run(self) -> None:
        self._running = True
        while self._running:
            try:
                await self.claim_once(block_ms=500)
            except Exception:
                # Redis or the database away for a moment: back off, never die of it.
                logger.exception("claiming from the queue failed; retrying in 1 s")
                await asyncio.sleep(1)

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every claimed entry is settled; False on timeout."""
        async with self._room:
            try:
                await asyncio.wait_for(self._room.wait_for(lambda: not self._open_entries), timeout)
            except TimeoutError:
                return False
        return True

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Stop claiming, finish what is held for up to ``timeout``, then hand the rest back to the queue."""
        self._running = False
        if not await self.wait_idle(timeout):
            for drainer in self._drainers.values():
                drainer.cancel()
            # What went out is written down before anything is handed back (bounded: the database may be away).
            await self.ledger.drain(timeout=5.0)
            for tracker in list(self._open_entries):
                await self.queue.retry_later(tracker.item, 0, "worker stopped before finishing")
            self._open_entries.clear()
            self._by_entry.clear()

    def apply(self, s) -> None:
        """Take a BridgeSettings row: mode, style, retries, digests, rates and breaker, live."""
        self.settings = SendSettings(
            mode=s.mode,
            style=s.message_style,
            timezone=s.timezone,
            digest_threshold=s.digest_threshold,
            retry_attempts=s.retry_attempts,
            retry_base_delay=s.retry_base_delay_ms / 1000,
            retry_max_delay=s.retry_max_delay_ms / 1000,
            capacity=s.pipeline_capacity,
            batch_size=s.queue_batch_size,
            targets_ttl=self.settings.targets_ttl,
            approval_timeout=s.approval_timeout_seconds,
        )
        self.cache.apply(s)
        self.limiter.update(
            RateLimits(
                global_per_second=s.rate_global_per_second,
                per_chat_per_second=s.rate_per_chat_per_second,
                per_group_per_minute=s.rate_per_group_per_minute,
                adaptive=s.rate_adaptive,
            )
        )
        self.breaker.update(
            failure_threshold=s.breaker_failure_threshold,
            window_seconds=s.breaker_window_seconds,
            open_seconds=s.breaker_open_seconds,
            half_open_successes=s.breaker_half_open_successes,
        )

    # --- the claim loop ----------------------------------------------------------------------------------------

    async def claim_once(self, *, block_ms: int = 0) -> int:
        """Claim what fits in the sender's capacity and hand it to the outboxes; returns how many were claimed."""
        # A full sender claims again once a worthwhile batch fits (half the capacity at most), not each time one
        # entry is closed: a claim of a few entries per round costs as much as one of a hundred.
        wanted = max(1, min(self.settings.batch_size, self.settings.capacity // 2))
        async with self._room:
            await self._room.wait_for(lambda: self.settings.capacity - len(self._open_entries) >= wanted)
            room = self.settings.capacity - len(self._open_entries)
        targets, mode = await self._current_targets(), self.settings.mode
        items, taken = await self.queue.claim_then(
            self.consumer,
            min(room, self.settings.batch_size),
            lambda claimed: _guard(self._take_in, claimed, targets, mode),
            block_ms=block_ms,
        )
        stale: list[Claimed] = []
        # Looking for a dead worker's entries costs a query: do it when idle, or once in a while under load.
        if not items or time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + _RECLAIM_EVERY
            stale = await self.queue.reclaim_stale(self.consumer, count=max(1, room - len(items)))
        now = time.time()
        for item in items:
            if item.deliveries == 1 and item.enqueued_at:  # a retry's wait would include its failed sends
                metrics.QUEUE_WAIT_SECONDS.observe(max(0.0, now - item.enqueued_at))
        claimed = (*items, *stale)
        try:
            if isinstance(taken, Exception):
                raise taken
            if items:
                await self._accept_all(items, taken)
            if stale:
                await self._accept_all(stale)
        except Exception as exc:
            # The database is away: hand back what is not yet taken in now, not after the visibility timeout.
            await self._give_back(claimed, f"could not be taken in: {exc}")
            raise
        if claimed:
            # Let the chats' drainers put their requests on the wire before the next claim takes the database
            # thread (and the GIL) for a millisecond or two.
            await asyncio.sleep(0)
        return len(claimed)

    async def _give_back(self, items: tuple[Claimed, ...], reason: str) -> None:
        for item in items:
            if _key(item) in self._by_entry:
                continue  # held and being sent: not ours to release
            try:
                await self.queue.retry_later(item, self.settings.retry_base_delay, reason)
            except Exception:
                return  # the queue is away too: the visibility timeout hands them out again

    @property
    def idle(self) -> bool:
        return not self._open_entries

    def _take_in(self, items: list[Claimed], targets: list[Target], mode: str) -> TakenIn:
        """Parse and route claimed entries, and create (or find) their deliveries: one database transaction for
        the batch. Synchronous: it runs on the database thread, in the claim's own trip when the queue can."""
        taken = TakenIn()
        for item in items:
            try:
                taken.parsed.append((item, Event.from_json(item.payload)))
            except ValueError as exc:
                taken.unreadable.append((item, f"unreadable payload: {exc}"))
        routed = {item.event_pk: route(event, targets, mode) for item, event in taken.parsed}
        taken.pending = deliveries.prepare(routed) if routed else {}
        return taken

    async def _accept_all(self, claimed: list[Claimed], taken: TakenIn | None = None) -> None:
        """Take claimed entries in (``taken``: already parsed and prepared in the claim's trip): those still to
        be sent go to their chats' outboxes."""
        held = [item for item in claimed if _key(item) in self._by_entry]
        for item in held:
            # Our own entry, reclaimed by us because its lease lapsed while the queue was unreachable: its
            # deliveries are already in the outboxes. Keep them there, under the new claim; taking them in again
            # would send every one twice.
            self._by_entry[_key(item)].item = item
        if taken is None:
            fresh = [item for item in claimed if _key(item) not in self._by_entry]
            if not fresh:
                return
            targets = await self._current_targets()
            taken = await sync_to_async(self._take_in)(fresh, targets, self.settings.mode)
        for item, reason in taken.unreadable:
            await self.queue.dead_letter(item, reason)
        for item, event in taken.parsed:
            if item in held:
                continue
            # pop: should one claim hold two entries of the same event, the second has nothing left to send.
            jobs = taken.pending.pop(item.event_pk, [])
            tracker = EntryTracker(item, event, open=len(jobs))
            if event.is_approval and jobs:
                tracker.approval = await sync_to_async(ensure_approval)(
                    item.event_pk, event, self.settings.approval_timeout
                )
            self._open_entries.add(tracker)
            self._by_entry[_key(item)] = tracker
            if not jobs:
                self.ledger.note([], [tracker])  # everything already sent (a crash before the ack): close it
            for p in jobs:
                if p.message_ids:  # part-sent before a crash or a hand-back: resume after those parts
                    tracker.note_parts(p.delivery_pk, p.message_ids)
                self._enqueue(
                    Job(p.delivery_pk, p.recipient_pk, p.chat_id, event, tracker, attempts=p.attempts)
                )

    async def _current_targets(self) -> list[Target]:
        return await self.cache.get_or_load(
            "targets", sync_to_async(deliveries.load_targets), shared=True, ttl=self.settings.targets_ttl
        )

    async def forget_targets(self) -> None:
        """Recipients changed: read them again before the next routing."""
        await self.cache.invalidate("targets", shared=True)

    async def _render(self, event: Event, token: str | None, size: int = 0):
        """Rendered once per event, whatever the number of recipients it goes to; off the event loop when the
        event's payload is ``size`` bytes over _RENDER_IN_THREAD_BYTES."""
        key = f"render:{event.event_id}:{self.settings.style}:{self.settings.timezone}:{token}"

        async def load():
            started = time.perf_counter()
            options = {"style": self.settings.style, "tz": self.settings.timezone, "token": token}
            if size > _RENDER_IN_THREAD_BYTES:
                rendered = await asyncio.to_thread(render, event, **options)
            else:
                rendered = render(event, **options)
            metrics.RENDER_SECONDS.observe(time.perf_counter() - started)
            return rendered

        return await self.cache.get_or_load(key, load)

    async def send_test(self, chat_id: int, text: str) -> bool:
        """Send an operator's test message (shown literally), within the rate limits; whether it arrived.

        The outcome, either way, is an AuditEntry: the operator who asked reads it in the admin.
        """
        await self.limiter.acquire(chat_id)
        try:
            sent = await self.transport.send_message(chat_id, escape_html(text), parse_mode=PARSE_MODE)
        except TransportError as error:
            await sync_to_async(AuditEntry.record)(
                "bridge",
                "recipient.test_failed",
                object_type="recipient",
                object_id=str(chat_id),
                detail=str(error),
            )
            return False
        await sync_to_async(AuditEntry.record)(
            "bridge",
            "recipient.test_sent",
            object_type="recipient",
            object_id=str(chat_id),
            detail=f"message {sent.message_id}",
        )
        return True

    # --- per-chat outboxes -------------------------------------------------------------------------------------
    def _enqueue(self, job: Job, *, not_before: float = 0.0) -> None:
        box = self.outboxes.setdefault(job.chat_id, Outbox())
        box.put(job, not_before=not_before)
        drainer = self._drainers.get(job.chat_id)
        if drainer is None or drainer.done():
            self._drainers[job.chat_id] = asyncio.create_task(
                self._drain(job.chat_id), name=f"chat {job.chat_id}"
            )
        elif box.wakeup is not None:
            box.wakeup.set()

    async def _drain(self, chat_id: int) -> None:
        box = self.outboxes[chat_id]
        while len(box):
            jobs = box.take(self.settings.digest_threshold)
            if not jobs:
                box.wakeup = asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(box.wakeup.wait(), timeout=box.next_due_in())
                box.wakeup = None
                continue
            try:
                await self._deliver(chat_id, jobs)
            except Exception:
                logger.exception("sending to chat %s failed unexpectedly; retrying", chat_id)
                for job in jobs:
                    box.put(job, not_before=time.monotonic() + self.settings.retry_base_delay)
        self.outboxes.pop(chat_id, None)
        self._drainers.pop(chat_id, None)

    async def _deliver(self, chat_id: int, jobs: list[Job]) -> None:
        # Rendered before the rate limiter hands out a slot, so that the slot is used when it comes: a slot
        # taken late (a cold render, a busy loop) would bring this send closer to the next one than the limit.
        digest = len(jobs) > 1
        size = sum(len(j.entry.item.payload) for j in jobs)
        if digest:
            events = [j.event for j in jobs]
            if size > _RENDER_IN_THREAD_BYTES:
                parts = await asyncio.to_thread(render_digest, events, tz=self.settings.timezone)
            else:
                parts = render_digest(events, tz=self.settings.timezone)
            parse_mode, keyboard = "HTML", None
        else:
            approval = jobs[0].entry.approval
            rendered = await self._render(jobs[0].event, approval.token if approval else None, size)
            parts, parse_mode = rendered.parts, rendered.parse_mode
            keyboard = rendered.markup
        # A message split in parts resumes after those already out (none, for every one-part message).
        resumed = () if digest else jobs[0].entry.parts_of(jobs[0].delivery_pk)
        # Half-open lets one trial through at a time; everyone else waits for its verdict.
        while not self.breaker.allow():
            await asyncio.sleep(max(self.breaker.retry_in(), 0.05))
        message_ids: list[int] = list(resumed)
        sending = 0.0
        try:
            for index, part in enumerate(parts[len(resumed) :], len(resumed)):
                last = index == len(parts) - 1
                async with self._turn(chat_id):
                    started = time.perf_counter()
                    try:
                        sent = await self.transport.send_message(
                            chat_id, part, parse_mode=parse_mode, reply_markup=keyboard if last else None
                        )
                    finally:
                        sending += time.perf_counter() - started
                message_ids.append(sent.message_id)
        except TransportError as error:
            metrics.SEND_SECONDS.observe(sending)
            parts_out = ()
            if not digest and len(message_ids) > len(resumed):  # parts went out before this one failed
                parts_out = tuple(message_ids)
                jobs[0].entry.note_parts(jobs[0].delivery_pk, parts_out)
            await self._failed(chat_id, jobs, error, parts_sent=parts_out)
            return
        metrics.SEND_SECONDS.observe(sending)
        self.breaker.record_success()
        if not digest and (approval := jobs[0].entry.approval) is not None:
            await until_done(
                "remembering the approval's message",
                lambda: sync_to_async(remember_message)(approval.pk, chat_id, message_ids[-1]),
            )
        status = Delivery.Status.DIGESTED if digest else Delivery.Status.SENT
        now = time.time()
        outcomes = []
        for job in jobs:
            latency_ms = (now - job.entry.item.enqueued_at) * 1000
            metrics.delivered(latency_ms / 1000)
            outcome = deliveries.Outcome(
                job.delivery_pk,
                status,
                job.attempts + 1,
                message_ids=tuple(message_ids),
                latency_ms=latency_ms,
            )
            outcomes.append((job, outcome))
        (metrics.DIGESTED if digest else metrics.SENT).inc(len(jobs))
        # The chat's next send waits until this one is on the books (other chats' records share the same write):
        # a crash then repeats at most the one send per chat that was out but not yet recorded.
        await self.ledger.written(self._settle(outcomes))

    @contextlib.asynccontextmanager
    async def _turn(self, chat_id: int) -> AsyncIterator[None]:
        """A rate-limit slot for a send to ``chat_id`` and a place among the sends in flight, in that order (a
        chat waiting for its slot holds no place). A send that waited for its place past _LATE_SLOT takes a new
        slot: leaving late, it could reach Telegram too close to the chat's next one."""
        while True:
            if waited := await self.limiter.acquire(chat_id):
                metrics.RATE_LIMIT_WAIT_SECONDS.observe(waited)
            slot = time.monotonic()
            async with self._in_flight:
                if time.monotonic() - slot <= _LATE_SLOT:
                    yield
                    return

    async def _failed(
        self, chat_id: int, jobs: list[Job], error: TransportError, *, parts_sent: tuple[int, ...] = ()
    ) -> None:
        """Decide what follows a failed send. ``parts_sent``: the ids of a split message's parts out so far, when
        this try sent some (``jobs`` is then that one message's job): they are on the books before the message is
        tried again, so that the retry, here or after a crash, sends only the rest."""
        box = self.outboxes.setdefault(chat_id, Outbox())

        def outcome(job: Job, status: str, attempts: int) -> deliveries.Outcome:
            return deliveries.Outcome(job.delivery_pk, status, attempts, str(error), parts_sent)

        if error.retry_after:
            self.breaker.record_success()  # the Bot API answered: it is up, just busy
            metrics.throttled()
            # Telegram's 429 does not say which limit it enforces; the transport tells (TransportError).
            await self.limiter.penalize(chat_id, error.retry_after, global_=error.global_limit)
            if parts_sent:
                await self.ledger.written(
                    self.ledger.note([outcome(jobs[0], Delivery.Status.SENDING, jobs[0].attempts)])
                )
            for job in jobs:  # Telegram asked us to wait: not the message's fault, no attempt used.
                box.put(job, not_before=time.monotonic() + error.retry_after)
            return
        if error.migrate_to_chat_id:
            for job in jobs:
                await sync_to_async(deliveries.follow_migration)(job.recipient_pk, error.migrate_to_chat_id)
                job.chat_id = error.migrate_to_chat_id
                self._enqueue(job)
            await self.forget_targets()
            return
        if error.api_unavailable:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()  # the Bot API answered: it is up, whatever it said
        outcomes = []
        for job in jobs:
            attempts = job.attempts + 1
            if error.permanent or attempts > self.settings.retry_attempts:
                metrics.DEAD.inc()
                outcomes.append((job, outcome(job, Delivery.Status.DEAD, attempts)))
            else:
                metrics.RETRIED.inc()
                job.attempts = attempts
                # Written before any later outcome of the same delivery: the ledger keeps the order of notes.
                ticket = self.ledger.note([outcome(job, Delivery.Status.FAILED, attempts)])
                if parts_sent:
                    await self.ledger.written(ticket)
                box.put(job, not_before=time.monotonic() + self.backoff(attempts))
        if outcomes:
            self._settle(outcomes)

    def backoff(self, attempts: int) -> float:
        """Exponential with full jitter: spreads the retries of many chats instead of synchronising them."""
        ceiling = min(self.settings.retry_max_delay, self.settings.retry_base_delay * 2 ** (attempts - 1))
        return random.uniform(ceiling / 2, ceiling)

    # --- recording and acking ----------------------------------------------------------------------------------
    def _settle(self, outcomes: list[tuple[Job, deliveries.Outcome]]) -> int:
        """Hand final outcomes to the ledger, with the entries they complete; returns the ledger's ticket."""
        closed = []
        for job, outcome in outcomes:
            self._notify(job, outcome)
            job.entry.open -= 1
            if job.entry.open == 0:
                closed.append(job.entry)
        return self.ledger.note([o for _, o in outcomes], closed)

    async def _closed(self, trackers: list[EntryTracker]) -> None:
        """The ledger recorded and acked these entries: they no longer count against the capacity."""
        if not trackers:
            return
        for tracker in trackers:
            metrics.PROCESSED[tracker.event.type].inc()
        async with self._room:
            for tracker in trackers:
                self._open_entries.discard(tracker)
                if self._by_entry.get(_key(tracker.item)) is tracker:
                    del self._by_entry[_key(tracker.item)]
            self._room.notify_all()

    def _notify(self, job: Job, outcome: deliveries.Outcome) -> None:
        for listener in self.listeners:
            listener(
                {
                    "event_id": job.event.event_id,
                    "type": job.event.type,
                    "chat_id": job.chat_id,
                    "status": outcome.status,
                    "latency_ms": outcome.latency_ms,
                    "error": outcome.error,
                }
            )


def _key(item: Claimed) -> tuple[int, str]:
    return item.lane, item.entry_id


def _guard(step, *args):
    """``step(*args)``, or the exception it raised: for work run inside a queue's claim, where raising would
    lose the claimed entries until the visibility timeout instead of handing them back at once."""
    try:
        return step(*args)
    except Exception as exc:
        return exc


def build_sender(pipeline) -> Sender:
    """The sender for a worker: the configured Bot API (or the sandbox emulator), the process's shared limits."""
    from django.conf import settings

    from bridge.telegram.limits import LocalRateLimiter, RedisRateLimiter

    transport = TelegramTransport(
        bot_token(),
        base_url=settings.TELEGRAM_API_BASE_URL,
        pool_size=settings.CC_TELEGRAM_POOL_SIZE,
        read_timeout=settings.CC_TELEGRAM_API_TIMEOUT,
        write_timeout=settings.CC_TELEGRAM_API_TIMEOUT,
    )
    if settings.REDIS_URL:
        import redis.asyncio as aioredis

        limiter = RedisRateLimiter(
            aioredis.Redis.from_url(settings.REDIS_URL), prefix=f"{settings.CC_TELEGRAM_REDIS_PREFIX}:rate"
        )
    else:
        limiter = LocalRateLimiter()
    breaker = CircuitBreaker(on_state_change=_breaker_metric)
    return Sender(
        pipeline.queue,
        transport,
        limiter,
        breaker,
        consumer=pipeline.name,
        cache=build_cache(),
        max_in_flight=min(settings.CC_TELEGRAM_POOL_SIZE, MAX_IN_FLIGHT),
    )


def bot_token() -> str:
    """TELEGRAM_BOT_TOKEN, or the sandbox's own token when the emulator stands in for Telegram."""
    from django.conf import settings

    return settings.TELEGRAM_BOT_TOKEN or settings.CC_TELEGRAM_SANDBOX_TOKEN


_BREAKER_LEVELS = {"closed": 0, "half_open": 1, "open": 2}


def _breaker_metric(old, new) -> None:
    metrics.BREAKER_STATE.set(_BREAKER_LEVELS.get(str(new), 0))
