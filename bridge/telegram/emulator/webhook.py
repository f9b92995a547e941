"""Webhook delivery: POST each pending update, in order, to the URL given to setWebhook.

An update leaves the queue only when the receiver answers 2xx; otherwise the error is recorded for
getWebhookInfo (``last_error_date``/``last_error_message``) and the update is retried with a growing pause, as
Telegram does. The secret token, if any, travels in ``X-Telegram-Bot-Api-Secret-Token``. One delivery task runs
per setWebhook; it ends when the webhook is deleted or replaced, or the state closes.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx

from .notify import wait_for_change

if TYPE_CHECKING:
    from .state import EmulatorState

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
REQUEST_TIMEOUT = 10.0
MAX_RETRY_PAUSE = 2.0

_tasks: set[asyncio.Task[None]] = set()  # strong references, so running deliveries are not collected


def start_delivery(state: EmulatorState, generation: int, loop: asyncio.AbstractEventLoop) -> None:
    """Start delivering for webhook ``generation`` on ``loop`` (the server's)."""
    task = loop.create_task(deliver_updates(state, generation))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _record_error(state: EmulatorState, generation: int, message: str) -> None:
    with state.lock:
        webhook = state.webhook
        if webhook is not None and webhook.generation == generation:
            webhook.last_error_date = int(time.time())
            webhook.last_error_message = message


async def deliver_updates(state: EmulatorState, generation: int) -> None:
    """Deliver until the webhook of ``generation`` is gone."""
    failures = 0
    # trust_env=False: a proxy from the environment must not intercept deliveries to a local receiver
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, trust_env=False) as client:
        while not state.closing:
            changed = state.updates_changed.subscribe()
            try:
                webhook = state.webhook
                if webhook is None or webhook.generation != generation:
                    return
                pending = state.pending_updates(1)
                if not pending:
                    await wait_for_change(changed, 5.0)
                    continue
            finally:
                state.updates_changed.unsubscribe(changed)
            update = pending[0]
            headers = {SECRET_HEADER: webhook.secret_token} if webhook.secret_token else {}
            try:
                response = await client.post(webhook.url, json=update, headers=headers)
            except httpx.HTTPError as error:
                problem = f"Connection failed: {error.__class__.__name__}: {error}"
            else:
                if 200 <= response.status_code < 300:
                    state.confirm_updates(update["update_id"] + 1)
                    with state.lock:
                        webhook.delivered += 1
                    failures = 0
                    continue
                problem = f"Wrong response from the webhook: {response.status_code} {response.reason_phrase}"
            _record_error(state, generation, problem)
            failures += 1
            await asyncio.sleep(min(0.05 * 2**failures, MAX_RETRY_PAUSE))
