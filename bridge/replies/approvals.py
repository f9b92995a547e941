"""Approvals: pending -> approved / denied / answered (another option) / expired, decided exactly once.

An approval_request gets its row (and an unguessable token for its buttons) before its first message is sent
(`ensure_approval`, `remember_message`: called by the sender). From then on:

- `decide`: the first valid press wins. The transition is one conditional UPDATE ... WHERE status='pending' AND
  not expired, so of two simultaneous presses, in one worker or two, exactly one changes a row; the winner's
  Response row (and, for "Allow for this session", its SessionGrant) is stored in the same transaction, so a
  decision never exists without the response the agent reads.
- `expire` / `expire_due`: the same conditional transition to expired, with a Response of decision "timeout";
  safe to run in every worker at once.
- `close_messages` edits every message of an approval (all recipients) to its final text, without buttons.
- `decision_for` / `wait_for_decision`: what the MCP tools and other waiters ask.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from bridge.events.schema import Event as TypedEvent
from bridge.models import Approval, AuditEntry, Response, SessionGrant
from bridge.operations import typed_event
from bridge.replies.response_files import PENDING
from bridge.telegram.format import render_expired
from bridge.telegram.keyboards import ALWAYS, APPROVE, DENY, callback_ref, new_token
from bridge.telegram.transport import TransportError

if TYPE_CHECKING:
    from bridge.replies.inbound import ButtonPress
    from bridge.replies.response_files import ResponseWriter
    from bridge.telegram.transport import TelegramTransport

logger = logging.getLogger(__name__)

OPTION_ACTION = re.compile(r"opt\d{1,2}")
LOOKUP_LIMIT = 50  # approvals sharing one ref (a reused task_id) searched for the pressed message
_STATUS = {APPROVE: Approval.Status.APPROVED, ALWAYS: Approval.Status.APPROVED, DENY: Approval.Status.DENIED}
_DECISION = {
    Approval.Status.APPROVED: Response.Decision.APPROVED,
    Approval.Status.DENIED: Response.Decision.DENIED,
    Approval.Status.ANSWERED: Response.Decision.ANSWERED,
    Approval.Status.EXPIRED: Response.Decision.TIMEOUT,
}


def ensure_approval(event_pk: int, event: TypedEvent, timeout_seconds: int) -> Approval:
    """The event's Approval, created on first call (pending, expiring ``timeout_seconds`` from now)."""
    token = new_token()
    approval, _ = Approval.objects.get_or_create(
        event_id=event_pk,
        defaults={
            "token": token,
            "ref": callback_ref(event, token),
            "expires_at": timezone.now() + timedelta(seconds=timeout_seconds),
        },
    )
    return approval


def remember_message(approval_pk: int, chat_id: int, message_id: int) -> None:
    """Bind a sent message to the approval: only presses on its messages can decide it."""
    with transaction.atomic():
        approval = Approval.objects.select_for_update().get(pk=approval_pk)
        pair = [chat_id, message_id]
        if pair not in approval.messages:
            approval.messages = [*approval.messages, pair]
            approval.save(update_fields=["messages"])


def is_deciding(action: str) -> bool:
    """Whether a button with this action decides an approval (approve, deny, always, opt<i>)."""
    return action in _STATUS or bool(OPTION_ACTION.fullmatch(action))


def find_for_message(chat_id: int, message_id: int, ref: str) -> Approval | None:
    """The approval whose buttons carry ``ref`` AND that was sent as message ``message_id`` in ``chat_id``.

    Both must hold: the client chooses the callback data, Telegram sets the message. Callback data copied onto
    another message, or another approval's ref on this one, finds nothing.
    """
    candidates = Approval.objects.filter(ref=ref).select_related("event").order_by("-pk")[:LOOKUP_LIMIT]
    return next((a for a in candidates if [chat_id, message_id] in a.messages), None)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a press did: ``won`` (it decided; ``response`` is the stored row whose file is still to be written)
    or not (``approval`` as someone else left it, or still pending when it ran out of time unswept)."""

    won: bool
    approval: Approval
    event: TypedEvent
    response: Response | None = None


def decide(approval_pk: int, action: str, option: str, press: ButtonPress, grant_seconds: int) -> Outcome:
    """Apply a deciding press (``is_deciding(action)``), if it is the first valid one."""
    status = _STATUS.get(action, Approval.Status.ANSWERED)
    now = timezone.now()
    with transaction.atomic():
        won = Approval.objects.filter(
            pk=approval_pk, status=Approval.Status.PENDING, expires_at__gt=now
        ).update(
            status=status,
            option=option,
            decided_by=press.sender.id,
            decided_by_name=press.sender.display,
            decided_at=now,
        )
        approval = Approval.objects.select_related("event").get(pk=approval_pk)
        event = typed_event(approval.event)
        if not won:
            return Outcome(False, approval, event)
        response = Response.objects.create(
            event=approval.event,
            kind=Response.Kind.CALLBACK,
            user_id=press.sender.id,
            username=press.sender.username,
            first_name=press.sender.first_name,
            callback_data=press.data,
            decision=_DECISION[status],
            task_id=event.task_id,
            original_message_id=press.message_id,
            update_id=press.update_id,
            file_error=PENDING,
        )
        if action == ALWAYS:
            _grant(event, press.sender.id, now + timedelta(seconds=grant_seconds))
        AuditEntry.record(
            press.sender.actor, "approval.decide", approval, after={"status": status, "option": option}
        )
    return Outcome(True, approval, event, response)


def _grant(event: TypedEvent, user_id: int, until: datetime) -> None:
    """ "Allow for this session": only for requests from the Claude Code hook, which name session and tool."""
    metadata = event.data.get("metadata") if isinstance(event.data, dict) else None
    if not isinstance(metadata, dict):
        return
    session_id, tool_name = metadata.get("hook_session_id"), metadata.get("tool_name")
    if isinstance(session_id, str) and session_id and isinstance(tool_name, str) and tool_name:
        SessionGrant.objects.update_or_create(
            session_id=session_id[:200],
            tool_name=tool_name[:200],
            defaults={"granted_by": user_id, "expires_at": until},
        )


@dataclass(frozen=True, slots=True)
class Expired:
    approval: Approval
    event: TypedEvent
    response: Response


def expire(approval_pk: int, now: datetime | None = None) -> Expired | None:
    """Close a pending approval whose time ran out, with a Response of decision "timeout"; None when it is not
    (or no longer) both pending and due, e.g. another worker expired it first."""
    now = now or timezone.now()
    with transaction.atomic():
        if not Approval.objects.filter(
            pk=approval_pk, status=Approval.Status.PENDING, expires_at__lte=now
        ).update(status=Approval.Status.EXPIRED, decided_at=now):
            return None
        approval = Approval.objects.select_related("event").get(pk=approval_pk)
        event = typed_event(approval.event)
        response = Response.objects.create(
            event=approval.event,
            kind=Response.Kind.CALLBACK,
            user_id=0,
            decision=Response.Decision.TIMEOUT,
            task_id=event.task_id,
            original_message_id=approval.messages[-1][1] if approval.messages else None,
            file_error=PENDING,
        )
        AuditEntry.record("bridge", "approval.expire", approval, detail="no answer in time")
    return Expired(approval, event, response)


def expire_due(now: datetime | None = None, limit: int = 100) -> list[Expired]:
    """Expire up to ``limit`` approvals past their time; returns those this call expired."""
    now = now or timezone.now()
    due = Approval.objects.filter(status=Approval.Status.PENDING, expires_at__lte=now).order_by("expires_at")
    closed = (expire(pk, now) for pk in list(due.values_list("pk", flat=True)[:limit]))
    return [item for item in closed if item is not None]


async def sweep_expired(transport: TelegramTransport, writer: ResponseWriter, tz: str) -> int:
    """One expiry step: expire what is due, queue the "timeout" responses, edit the messages. Returns how many."""
    expired = await sync_to_async(expire_due)()
    for item in expired:
        await writer.submit(item.response)
    for item in expired:
        text = render_expired(item.event, when=item.approval.decided_at, tz=tz)
        await close_messages(transport, item.approval.messages, text)
    return len(expired)


async def close_messages(transport: TelegramTransport, messages: list, text: str) -> None:
    """Replace every message of an approval with ``text`` (HTML) and remove its buttons, all chats at once.

    Never raises: a message that was deleted or cannot be edited is logged and left as it is; a 429 is waited
    out once.
    """

    async def edit(chat_id: int, message_id: int) -> None:
        for attempt in (1, 2):
            try:
                await transport.edit_message(chat_id, message_id, text, parse_mode="HTML", reply_markup=None)
                return
            except TransportError as error:
                if error.retry_after and attempt == 1:
                    await asyncio.sleep(error.retry_after)
                    continue
                logger.warning(
                    "could not close approval message %s in chat %s: %s", message_id, chat_id, error
                )
                return

    await asyncio.gather(*(edit(int(chat_id), int(message_id)) for chat_id, message_id in messages))


# --- asking for the outcome: bridge.replies.decisions (Telegram-free, so the MCP process can use it too) -------
from bridge.replies.decisions import Decision, decision_for, wait_for_decision  # noqa: E402

__all__ = ["Decision", "decision_for", "wait_for_decision"]
