"""The poller: getUpdates long polling, exactly one poller per bot token across all workers.

Each `poll_once` step takes (or renews) the poller lease (lease.py) and, only when held, makes one getUpdates
call from the stored offset, hands the updates to the UpdateHandler, waits until their responses are stored,
and only then stores the next offset (PollerState.next_offset). So a restart resumes exactly after the last
handled update: none lost (the offset never passes an update whose responses are not stored) and none handled
twice (a batch cut short by a crash is fetched again, and the handler skips update_ids it already stored).

Workers without the lease stand by (no call to Telegram at all) and take over when the holder releases it or
dies. A 409 Conflict therefore means something outside the bridge polls this token, or a webhook is set: it is
logged as an error, audited (poller.conflict, again every AUDIT_EVERY while it lasts) and stored in PollerState,
where /health reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.db.models import Value
from django.db.models.functions import Greatest
from django.utils import timezone

from bridge.models import AuditEntry, PollerState
from bridge.replies.handler import UpdateHandler
from bridge.replies.inbound import ALLOWED_UPDATES, Inbound, parse_update
from bridge.replies.lease import Lease
from bridge.telegram.transport import TelegramTransport, TransportError

logger = logging.getLogger(__name__)

POLL_TIMEOUT = 4
"""Seconds a getUpdates is held open. Well under the lease ttl, so the holder renews in time between polls."""
AUDIT_EVERY = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class PollResult:
    """What a step did: "standby" (another worker holds the lease), "polled" (``handled`` updates), "conflict"
    (409) or "error" (Telegram or the lease store unreachable; ``error`` says what)."""

    state: str
    handled: int = 0
    error: str = ""


class Poller:
    def __init__(
        self,
        transport: TelegramTransport,
        handler: UpdateHandler,
        lease: Lease,
        *,
        bot_id: str,
        timeout: int = POLL_TIMEOUT,
    ) -> None:
        self.transport = transport
        self.handler = handler
        self.lease = lease
        self.bot_id = bot_id
        self.timeout = timeout
        self.held = False
        self._next_offset: int | None = None
        """Where the next getUpdates starts, known since this worker took the lease: read from PollerState once,
        then kept here, so a poll costs no read. Another worker that polled meanwhile can only have moved the
        stored offset on, and Telegram forgets confirmed updates: a lower offset here fetches nothing twice."""
        self._last_conflict_audit = None

    async def poll_once(self, timeout: int | None = None) -> PollResult:
        """One step: lease, one getUpdates (held up to ``timeout`` seconds, default ``self.timeout``), handle.

        Never raises for Telegram, Redis or the database being away: the result says so and the caller backs off.
        """
        try:
            held = await self.lease.acquire()
        except Exception as error:
            logger.warning("poller lease for bot %s unavailable: %s", self.bot_id, error)
            return PollResult("error", error=f"lease: {error}")
        if not held:
            if self.held:
                logger.warning("poller lease for bot %s lost to another worker", self.bot_id)
            self.held = False
            return PollResult("standby")
        try:
            if not self.held:
                await self._took_over()
            if self._next_offset is None:
                self._next_offset = await sync_to_async(_offset)(self.bot_id)
            raw = await self.transport.get_updates(
                offset=self._next_offset or None,
                timeout=self.timeout if timeout is None else timeout,
                allowed_updates=ALLOWED_UPDATES,
            )
        except TransportError as error:
            if error.reason == "conflict":
                if not await self._still_held():
                    # A worker that took the lapsed lease over polled after us: a hand-over, not a conflict.
                    return PollResult("standby")
                await self._conflict(error)
                return PollResult("conflict", error=error.message)
            logger.warning("getUpdates failed (%s); retrying", error.reason)
            await sync_to_async(_record)(self.bot_id, error=f"{error.reason}: {error.message}")
            return PollResult("error", error=error.message)
        items = _parse(raw)
        await self.handler.handle(items)
        await self.handler.writer.flush()
        next_offset = max(u.update_id for u in raw) + 1 if raw else None
        await sync_to_async(_record_poll)(self.bot_id, next_offset)
        if next_offset is not None:
            self._next_offset = max(self._next_offset or 0, next_offset)
        self._last_conflict_audit = None
        return PollResult("polled", handled=len(items))

    async def release(self) -> None:
        """Give the lease up (on a clean stop) so a standby worker takes over at once."""
        if self.held:
            with contextlib.suppress(Exception):
                await self.lease.release()
                await sync_to_async(_announce_holder)(self.bot_id, "", only_if=self.lease.holder)
        self.held = False

    async def keep_lease(self) -> None:
        """Renew the lease every ttl / 3 while held, so a long batch does not let it lapse. Runs until cancelled."""
        while True:
            await asyncio.sleep(self.lease.ttl / 3)
            if self.held:
                try:
                    self.held = await self.lease.acquire()
                except Exception as error:
                    logger.warning("renewing the poller lease failed: %s", error)

    async def _still_held(self) -> bool:
        try:
            self.held = await self.lease.acquire()
        except Exception:
            return True  # cannot tell: report what Telegram said
        return self.held

    async def _took_over(self) -> None:
        self.held = True
        self._next_offset = None  # read again: the worker that polled before may have moved it on
        await sync_to_async(_announce_holder)(self.bot_id, self.lease.holder)
        logger.info("this worker (%s) now polls updates for bot %s", self.lease.holder, self.bot_id)
        # The mode says polling: a webhook left behind would make every getUpdates answer 409.
        try:
            await self.transport.delete_webhook()
        except TransportError as error:
            logger.warning("could not remove a webhook before polling: %s", error)

    async def _conflict(self, error: TransportError) -> None:
        logger.error(
            "getUpdates conflict (409) for bot %s: %s. This worker holds the bridge's poller lease, so another "
            "program is polling this bot token or a webhook is set. Stop it, or set updates_mode to webhook.",
            self.bot_id,
            error.message,
        )
        state = await sync_to_async(_record)(self.bot_id, error=f"conflict: {error.message}")
        now = timezone.now()
        if self._last_conflict_audit is None or now - self._last_conflict_audit > AUDIT_EVERY:
            self._last_conflict_audit = now
            await sync_to_async(AuditEntry.record)("bridge", "poller.conflict", state, detail=error.message)


def _parse(raw: list) -> list[Inbound]:
    items = []
    for update in raw:
        try:
            item = parse_update(update)
        except Exception:
            logger.exception("update %s could not be read; skipped", getattr(update, "update_id", "?"))
            continue
        if item is not None:
            items.append(item)
    return items


def _offset(bot_id: str) -> int:
    return PollerState.objects.filter(bot_id=bot_id).values_list("next_offset", flat=True).first() or 0


def _record_poll(bot_id: str, next_offset: int | None) -> None:
    """Store a poll's outcome, the next offset after the handled updates, in one UPDATE (a poll follows every
    handled batch: its cost is paid between the owner's messages). Only these columns: the lease columns belong
    to the lease, and the offset never moves back."""
    now = timezone.now()
    changes = {"last_poll_at": now, "updated_at": now}
    if next_offset is not None:
        changes["next_offset"] = Greatest("next_offset", Value(next_offset))
    if not PollerState.objects.filter(bot_id=bot_id).update(**changes):
        PollerState.objects.get_or_create(bot_id=bot_id)
        PollerState.objects.filter(bot_id=bot_id).update(**changes)


def _record(bot_id: str, *, error: str) -> PollerState:
    """Store the error a step met; returns the row (for the audit entry)."""
    now = timezone.now()
    PollerState.objects.get_or_create(bot_id=bot_id)
    rows = PollerState.objects.filter(bot_id=bot_id)
    rows.update(last_error=error[:2000], last_error_at=now, updated_at=now)
    return rows.get()


def _announce_holder(bot_id: str, holder: str, only_if: str | None = None) -> None:
    """Say who polls ("" for nobody; ``only_if``: only if that worker was said to). With the database lease this
    is the lease itself, already in that state."""
    PollerState.objects.get_or_create(bot_id=bot_id)
    rows = PollerState.objects.filter(bot_id=bot_id)
    if only_if is not None:
        rows = rows.filter(holder=only_if)
    rows.update(holder=holder, updated_at=timezone.now())
