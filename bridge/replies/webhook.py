"""Webhook mode: Telegram POSTs each update to /telegram/webhook/<secret> on the web process.

Both the path secret and the X-Telegram-Bot-Api-Secret-Token header must equal TELEGRAM_WEBHOOK_SECRET
(compared in constant time); anything else is 403, and with no secret configured every request is. The update
goes through the same UpdateHandler as the poller's. Answers: 200 once handled (also for updates the bridge does
not act on), 400 for a body that is not an update (it cannot come from Telegram), 500 when handling failed for a
reason that may pass (the database away): Telegram then retries, and the handler skips what it already stored.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import weakref

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bridge.replies.handler import UpdateHandler
from bridge.replies.inbound import parse_update_json
from bridge.replies.response_files import ResponseWriter
from bridge.telegram.transport import TelegramTransport, TransportError

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# One Bot API client per event loop: its connection pool belongs to the loop that opened it. Under daphne that
# is one for the process's life; a test client running each request on a fresh loop gets a fresh one.
_handlers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, UpdateHandler] = weakref.WeakKeyDictionary()


def secret_matches(path_secret: str, header_secret: str) -> bool:
    """Whether both the path and the header carry TELEGRAM_WEBHOOK_SECRET (never true when it is unset)."""
    expected = (settings.TELEGRAM_WEBHOOK_SECRET or "").encode()
    if not expected:
        return False
    path_ok = hmac.compare_digest(path_secret.encode(), expected)
    header_ok = hmac.compare_digest(header_secret.encode(), expected)
    return path_ok and header_ok


@csrf_exempt
@require_POST
async def telegram_webhook(request: HttpRequest, secret: str) -> HttpResponse:
    if not secret_matches(secret, request.headers.get(SECRET_HEADER, "")):
        logger.warning("webhook request with a wrong secret refused")
        return HttpResponseForbidden("wrong secret\n")
    try:
        item = parse_update_json(json.loads(request.body))
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        return HttpResponseBadRequest(f"{error}\n")
    if item is not None:
        try:
            handler = await _handler()
            await handler.handle([item])
        except Exception:
            logger.exception("webhook update %s could not be handled; Telegram will retry", item.update_id)
            return JsonResponse({"ok": False}, status=500)
    return JsonResponse({"ok": True})


async def _handler() -> UpdateHandler:
    """The handler of this event loop (responses written as they come: no writer task outlives a request)."""
    loop = asyncio.get_running_loop()
    handler = _handlers.get(loop)
    if handler is None:
        from bridge.telegram.send import bot_token

        transport = TelegramTransport(
            bot_token(), base_url=settings.TELEGRAM_API_BASE_URL, pool_size=settings.CC_TELEGRAM_POOL_SIZE
        )
        try:
            await transport.start()
        except TransportError:
            await transport.close()
            raise
        handler = _handlers[loop] = UpdateHandler(transport, ResponseWriter())
    return handler
