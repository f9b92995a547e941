"""The sandbox chat page: what the bot sent through the in-process emulator, and the user's side of the chat.

Presses and replies go into the emulator as updates from the sandbox user, exactly as Telegram would deliver
them; the bridge's update poller picks them up from there. The page itself only reads messages and injects
updates, behind a staff login and CSRF.
"""

from __future__ import annotations

import json
from functools import wraps

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from bridge.csp import strict_csp
from bridge.sandbox.mount import emulator_state
from bridge.sandbox.users import sandbox_recipient, telegram_user
from bridge.telegram.emulator import inject_callback, inject_message

MAX_TEXT = 4096


def sandbox_only(view):
    """404 unless the sandbox is on (no TELEGRAM_BOT_TOKEN)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.CC_TELEGRAM_SANDBOX:
            raise Http404("The sandbox is off: a TELEGRAM_BOT_TOKEN is set.")
        return view(request, *args, **kwargs)

    return wrapper


def staff_api(view):
    """Like staff_member_required, but a 403 JSON answer instead of a redirect to the login page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not (user.is_active and user.is_staff):
            return JsonResponse({"error": "log in as staff first"}, status=403)
        return view(request, *args, **kwargs)

    return wrapper


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _body(request: HttpRequest) -> dict:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return request.POST.dict()


@sandbox_only
@require_GET
@staff_member_required
@strict_csp
def chat(request: HttpRequest) -> HttpResponse:
    recipient = sandbox_recipient()
    context = {"recipient": recipient, "bot": emulator_state().bot_username, "sandbox_on": True}
    return render(request, "sandbox/chat.html", context)


@sandbox_only
@require_GET
@never_cache
@staff_api
def messages(request: HttpRequest) -> JsonResponse:
    """``?since=V``: the messages of the sandbox chat created, edited or deleted after version V (both sides),
    the newest version, and the latest callback answers (the toasts Telegram would show)."""
    recipient = sandbox_recipient()
    try:
        since = max(0, int(request.GET.get("since", "0")))
    except ValueError:
        return _error("since must be a number")
    if recipient is None:
        return JsonResponse({"chat_id": None, "version": since, "messages": [], "answers": []})
    state = emulator_state()
    records = state.sent_messages(recipient.chat_id, changed_since=since, include_incoming=True)
    return JsonResponse(
        {
            "chat_id": recipient.chat_id,
            "version": max([since, *(r["version"] for r in records)]),
            "messages": records,
            "answers": state.answered_callbacks()[-20:],
        }
    )


@sandbox_only
@require_POST
@staff_api
def press(request: HttpRequest) -> JsonResponse:
    """Press an inline button: ``message_id`` and the button's ``data``, which must be on that message."""
    recipient = sandbox_recipient()
    if recipient is None:
        return _error("no active approver to press as", 409)
    body = _body(request)
    try:
        message_id = int(body.get("message_id", ""))
    except (TypeError, ValueError):
        return _error("message_id must be a number")
    data = str(body.get("data", ""))
    state = emulator_state()
    record = state.get_message(recipient.chat_id, message_id)
    if record is None or not record.outgoing:
        return _error("no such message from the bot in this chat", 404)
    rows = (record.message.get("reply_markup") or {}).get("inline_keyboard") or []
    if not any(button.get("callback_data") == data for row in rows for button in row):
        return _error("that message has no such button (any more)", 409)
    result = inject_callback(
        state, recipient.chat_id, message_id, data, user=telegram_user(recipient, request.user.get_username())
    )
    return JsonResponse({"query_id": result["callback_query"]["id"]})


@sandbox_only
@require_POST
@staff_api
def say(request: HttpRequest) -> JsonResponse:
    """Send a text message to the bot, optionally as a reply to ``reply_to`` (a message id)."""
    recipient = sandbox_recipient()
    if recipient is None:
        return _error("no active approver to write as", 409)
    body = _body(request)
    text = str(body.get("text", "")).strip()
    if not text or len(text) > MAX_TEXT:
        return _error(f"a message needs 1 to {MAX_TEXT} characters")
    try:
        reply_to = int(body["reply_to"]) if body.get("reply_to") else None
    except (TypeError, ValueError):
        return _error("reply_to must be a message id")
    result = inject_message(
        emulator_state(),
        recipient.chat_id,
        text,
        user=telegram_user(recipient, request.user.get_username()),
        reply_to_message_id=reply_to,
    )
    return JsonResponse({"message_id": result["message"]["message_id"]})
