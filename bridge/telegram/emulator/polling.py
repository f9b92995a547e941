"""getUpdates (real long polling) and the webhook methods.

getUpdates confirms the updates below ``offset``, then answers at once if updates are pending, else holds the
request until one arrives or ``timeout`` seconds pass. Like Telegram, a newer getUpdates terminates an older
one still waiting (409 "terminated by other getUpdates request"), and getUpdates answers 409 while a webhook is
set. With a webhook, updates are POSTed to it by ``webhook.deliver_updates`` instead.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from .call import Call
from .errors import CONFLICT_OTHER_POLLER, CONFLICT_WEBHOOK, bad_request, conflict
from .notify import wait_for_change
from .webhook import start_delivery

_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


async def get_updates(call: Call) -> list[dict[str, Any]]:
    state, params = call.state, call.params
    if state.webhook is not None:
        raise conflict(CONFLICT_WEBHOOK)
    offset = params.get_int("offset")
    limit = min(max(params.get_int("limit", 100) or 100, 1), 100)
    timeout = max(params.get_float("timeout", 0.0) or 0.0, 0.0)
    allowed = params.get_json("allowed_updates")
    state.set_allowed_updates(allowed if isinstance(allowed, list) else None)
    if offset:
        state.confirm_updates(offset)
    generation = state.begin_poll()
    deadline = time.monotonic() + timeout
    while True:
        changed = state.updates_changed.subscribe()
        try:
            if state.poll_generation != generation:
                raise conflict(CONFLICT_OTHER_POLLER)
            if state.webhook is not None:
                raise conflict(CONFLICT_WEBHOOK)
            updates = state.pending_updates(limit)
            remaining = deadline - time.monotonic()
            if updates or remaining <= 0 or state.closing:
                return updates
            await wait_for_change(changed, remaining)
        finally:
            state.updates_changed.unsubscribe(changed)


def set_webhook(call: Call) -> bool:
    state, params = call.state, call.params
    url = params.get_str("url") or ""
    drop = params.get_bool("drop_pending_updates")
    if not url:
        state.delete_webhook(drop)
        return True
    # Telegram demands HTTPS; the emulator also takes http:// so that tests can run a plain local receiver.
    if not url.startswith(("https://", "http://")):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = params.get_str("secret_token")
    if secret and not _SECRET_TOKEN.match(secret):
        raise bad_request("secret token contains unallowed characters")
    allowed = params.get_json("allowed_updates")
    allowed = allowed if isinstance(allowed, list) else None
    if drop:
        with state.lock:
            state.updates.clear()
    state.set_allowed_updates(allowed)
    max_connections = min(max(params.get_int("max_connections", 40) or 40, 1), 100)
    webhook = state.set_webhook(url, secret or None, max_connections, allowed or [])
    start_delivery(state, webhook.generation, asyncio.get_running_loop())
    return True


def delete_webhook(call: Call) -> bool:
    call.state.delete_webhook(call.params.get_bool("drop_pending_updates"))
    return True


def get_webhook_info(call: Call) -> dict[str, Any]:
    state = call.state
    with state.lock:
        webhook = state.webhook
        info: dict[str, Any] = {
            "url": webhook.url if webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(state.updates),
        }
        if webhook is not None:
            info["max_connections"] = webhook.max_connections
            if webhook.allowed_updates:
                info["allowed_updates"] = list(webhook.allowed_updates)
            if webhook.last_error_date is not None:
                info["last_error_date"] = webhook.last_error_date
                info["last_error_message"] = webhook.last_error_message
    return info
