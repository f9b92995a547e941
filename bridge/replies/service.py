"""Replies in a worker: the poller (or the webhook registration), the response writer, and two sweeps.

`Replies` is built from steps that each do one unit of work and return (`poll_once`, `expire_once`,
`retry_once`, `ensure_webhook`); `start` runs them as loops and `stop` drains. Every worker runs one: the poller
lease lets only one of them poll, while the sweeps are safe to run everywhere (conditional updates decide which
worker expires an approval; a retried file is the same file whoever writes it).

Polling or webhook follows BridgeSettings.updates_mode, live. In webhook mode no worker polls; each registers
TELEGRAM_WEBHOOK_URL + /telegram/webhook/<TELEGRAM_WEBHOOK_SECRET> with Telegram once (the same URL, so it does
not matter how many do), and the web process handles updates (webhook.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from bridge.models import BridgeSettings, PollerState, UpdatesMode
from bridge.replies import approvals
from bridge.replies.handler import UpdateHandler
from bridge.replies.inbound import ALLOWED_UPDATES
from bridge.replies.lease import DatabaseLease, Lease, RedisLease
from bridge.replies.response_files import ResponseWriter, retry_unwritten
from bridge.replies.updates import Poller, PollResult
from bridge.telegram.transport import TelegramTransport, TransportError

logger = logging.getLogger(__name__)

EXPIRY_SECONDS = 1.0
RETRY_SECONDS = 5.0
STANDBY_SECONDS = 1.0
CONFLICT_SECONDS = 5.0
ERROR_SECONDS = 2.0
WEBHOOK_RETRY_SECONDS = 30.0  # a missing URL or secret stays missing until someone acts: retry, quietly
_PAUSE = {"standby": STANDBY_SECONDS, "conflict": CONFLICT_SECONDS, "error": ERROR_SECONDS}


def bot_id_of(token: str) -> str:
    """The bot's numeric id, the part of its token before the colon (not secret: Telegram shows it to users)."""
    return token.partition(":")[0]


def build_lease(bot_id: str, holder: str) -> Lease:
    """The poller lease: in Redis when REDIS_URL is set (key under CC_TELEGRAM_REDIS_PREFIX), else the database."""
    if settings.REDIS_URL:
        key = f"{settings.CC_TELEGRAM_REDIS_PREFIX}:poller:{bot_id}"
        return RedisLease(settings.REDIS_URL, key, holder)
    return DatabaseLease(bot_id, holder)


class Replies:
    def __init__(
        self, transport: TelegramTransport, *, name: str, bot_id: str, lease: Lease | None = None
    ) -> None:
        self.transport = transport
        self.name = name
        self.bot_id = bot_id
        self.writer = ResponseWriter()
        self.handler = UpdateHandler(transport, self.writer)
        self.poller = Poller(transport, self.handler, lease or build_lease(bot_id, name), bot_id=bot_id)
        self.updates_mode = UpdatesMode.POLLING
        self.timezone = "UTC"
        self.webhook_set = False
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()

    def apply(self, current: BridgeSettings) -> None:
        """Take the settings row: updates mode and time zone, live."""
        if current.updates_mode != self.updates_mode:
            logger.info("updates mode is now %s", current.updates_mode)
            self.webhook_set = False
        self.updates_mode = current.updates_mode
        self.timezone = current.timezone

    # --- steps ----------------------------------------------------------------------------------------------------
    async def poll_once(self, timeout: int | None = None) -> PollResult:
        return await self.poller.poll_once(timeout)

    async def expire_once(self) -> int:
        return await approvals.sweep_expired(self.transport, self.writer, self.timezone)

    async def retry_once(self) -> int:
        return await retry_unwritten(self.writer)

    async def ensure_webhook(self) -> bool:
        """Register the webhook with Telegram (once per switch to webhook mode); False when it cannot be."""
        if self.webhook_set:
            return True
        base = getattr(settings, "TELEGRAM_WEBHOOK_URL", "")
        secret = settings.TELEGRAM_WEBHOOK_SECRET
        if not (base and secret):
            problem = "webhook mode needs TELEGRAM_WEBHOOK_URL and TELEGRAM_WEBHOOK_SECRET; no updates arrive"
        else:
            url = base.rstrip("/") + reverse("telegram-webhook", args=[secret])
            try:
                await self.transport.set_webhook(url, secret, allowed_updates=ALLOWED_UPDATES)
            except TransportError as error:
                problem = f"setWebhook failed: {error}"
            else:
                logger.info("webhook registered at %s/telegram/webhook/<secret>", base.rstrip("/"))
                self.webhook_set = True
                return True
        logger.error(problem)
        await sync_to_async(_report)(self.bot_id, problem)
        return False

    # --- long-running -----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.apply(await sync_to_async(BridgeSettings.load)())
        self.writer.start()
        self._tasks = [
            asyncio.create_task(self._updates_loop(), name="updates"),
            asyncio.create_task(self.poller.keep_lease(), name="poller lease"),
            asyncio.create_task(
                self._every(EXPIRY_SECONDS, self.expire_once, "expiring approvals"), name="expiry"
            ),
            asyncio.create_task(
                self._every(RETRY_SECONDS, self.retry_once, "rewriting responses"), name="retry"
            ),
        ]

    async def stop(self) -> None:
        """Stop polling (a long poll in flight is cut short), release the lease, write what is queued."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.poller.release()
        await self.writer.stop()
        close = getattr(self.poller.lease, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()

    async def _updates_loop(self) -> None:
        while not self._stopping.is_set():
            pause = 0.0
            try:
                if self.updates_mode == UpdatesMode.WEBHOOK:
                    await self.poller.release()
                    pause = STANDBY_SECONDS if await self.ensure_webhook() else WEBHOOK_RETRY_SECONDS
                else:
                    result = await self.poll_once()
                    pause = _PAUSE.get(result.state, 0.0)
            except Exception:
                logger.exception("handling updates failed; retrying in %.0f s", ERROR_SECONDS)
                pause = ERROR_SECONDS
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause)

    async def _every(self, seconds: float, step, what: str) -> None:
        while not self._stopping.is_set():
            try:
                await step()
            except Exception:
                logger.exception("%s failed; trying again in %.0f s", what, seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)


def _report(bot_id: str, problem: str) -> None:
    PollerState.objects.get_or_create(bot_id=bot_id)
    PollerState.objects.filter(bot_id=bot_id).update(last_error=problem, last_error_at=timezone.now())


def build_replies(transport: TelegramTransport, name: str) -> Replies:
    """The replies of a worker whose sender talks through ``transport``."""
    from bridge.telegram.send import bot_token

    return Replies(transport, name=name, bot_id=bot_id_of(bot_token()))
