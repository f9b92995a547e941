"""Button presses: who may press, what a press decides, and the one answer every press gets.

Contract:
- answerCallbackQuery is called exactly once per press, whatever happens (refusals, errors included): the
  user's button stops spinning and says what happened.
- Only active Recipients are heard; anyone else is told "You are not allowed to answer this bot" (an alert) and
  the attempt is audited as access.refused. Deciding an approval also needs the approver role.
- An approval is found by the pressed message (Telegram sets it) and the ref in the callback data (the client
  sets it); both must match (approvals.find_for_message). The first valid press decides (approvals.decide);
  then every message of that approval, in every chat, shows the decision and loses its buttons. Later presses
  are told "Already decided: approved by @x at 14:03 UTC".
- Acknowledge and Details (task completions, and Details on approvals) and data.actions buttons produce a
  Response (decision acknowledged, details or none); Details also sends the event's detailed rendering.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import chain
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asgiref.sync import sync_to_async

from bridge.channel import relay
from bridge.models import Approval, AuditEntry, Delivery, Recipient, Response
from bridge.replies import approvals
from bridge.replies.response_files import write_now
from bridge.telegram.format import render, render_decision, render_expired
from bridge.telegram.keyboards import ACK, ALWAYS, DETAILS, callback_ref, option_for, parse_callback_data
from bridge.telegram.transport import TransportError

if TYPE_CHECKING:
    from bridge.models import Event
    from bridge.replies.handler import Context
    from bridge.replies.inbound import ButtonPress, Sender

logger = logging.getLogger(__name__)

NOT_ALLOWED = "You are not allowed to answer this bot"
FollowUp = Callable[[], Awaitable[None]] | None
_VERB = {
    Approval.Status.APPROVED: "✅ Approved",
    Approval.Status.DENIED: "❌ Denied",
    Approval.Status.ANSWERED: "☑️ Answered",
    Approval.Status.EXPIRED: "⌛ Expired",
}
RECENT_DELIVERIES = 200  # messages of one chat searched for the event a button or a reply belongs to


@dataclass(frozen=True, slots=True)
class Answer:
    """The answerCallbackQuery text: a toast, or an alert the user must dismiss."""

    text: str
    alert: bool = False


async def handle_press(context: Context, press: ButtonPress) -> None:
    answer, follow_up = Answer("Something went wrong; the bridge has logged it.", alert=True), None
    try:
        answer, follow_up = await _handle(context, press)
    except Exception:
        logger.exception("button press %r from %s failed", press.data, press.sender.id)
    finally:
        try:
            await context.transport.answer_callback(press.query_id, answer.text, show_alert=answer.alert)
        except TransportError as error:
            logger.warning("answerCallbackQuery for %s failed: %s", press.sender.id, error)
    if follow_up is not None:
        await follow_up()


async def _handle(context: Context, press: ButtonPress) -> tuple[Answer, FollowUp]:
    try:
        action, ref = parse_callback_data(press.data)
    except ValueError:
        action, ref = "", ""
    on_message = press.chat_id is not None and press.message_id is not None
    if on_message and approvals.is_deciding(action):
        return await _decide(context, press, action, ref)
    recipient = await sync_to_async(_recipient)(press.sender.id)
    if recipient is None:
        await sync_to_async(_refuse)(
            press.sender, f"button {press.data!r} pressed by someone not an active recipient"
        )
        return Answer(NOT_ALLOWED, alert=True), None
    if not (action and on_message):
        return Answer("This button is not one of the bridge's.", alert=True), None
    row = await sync_to_async(event_for_message)(press.chat_id, press.message_id, ref)
    if row is None:
        return Answer("The bridge no longer knows this message.", alert=True), None
    decision = {ACK: Response.Decision.ACKNOWLEDGED, DETAILS: Response.Decision.DETAILS}.get(action, "")
    await context.writer.submit(_response(press, row, decision))
    if action == ACK:
        return Answer("👍 Acknowledged"), None
    if action == DETAILS:
        return Answer("📄 Details below"), lambda: _send_details(context, press, row)
    return Answer("✓ Passed to the agent"), None


@dataclass(frozen=True, slots=True)
class Decided:
    """What `_decide_now` did: refused (``refusal`` is the answer), decided, found it decided, or expired it."""

    refusal: Answer | None = None
    outcome: approvals.Outcome | None = None
    expired: approvals.Expired | None = None


def _decide_now(press: ButtonPress, action: str, ref: str, grant_seconds: int) -> Decided:
    """All a deciding press does in the database, in one trip off the event loop: who pressed, which approval,
    the decision, and (the agent is waiting for it) its response file, written at once rather than queued."""
    recipient = _recipient(press.sender.id)
    if recipient is None:
        _refuse(press.sender, f"button {press.data!r} pressed by someone not an active recipient")
        return Decided(Answer(NOT_ALLOWED, alert=True))
    approval = approvals.find_for_message(press.chat_id, press.message_id, ref)
    if approval is None:
        _refuse(press.sender, f"callback data {press.data!r} does not belong to the pressed message")
        return Decided(
            Answer("This button does not belong to this message: nothing was decided.", alert=True)
        )
    if recipient.role != Recipient.Role.APPROVER:
        _refuse(press.sender, f"viewer pressed {press.data!r}: only approvers decide approvals")
        return Decided(Answer("Only approvers can decide approvals.", alert=True))
    event = approvals.typed_event(approval.event)
    option = "Allow for this session" if action == ALWAYS else option_for(event, action)
    if option is None:
        return Decided(Answer("This option is not offered here.", alert=True))
    outcome = approvals.decide(approval.pk, action, option, press, grant_seconds)
    if outcome.won:
        relay.wake_asker(outcome.event)  # a Claude Code channel session waiting on this decision
        write_now([outcome.response])
    elif outcome.approval.status == Approval.Status.PENDING:
        # Out of time, and the sweeper has not come by yet: close it now rather than leave the buttons live.
        expired = approvals.expire(approval.pk)
        if expired is not None:
            write_now([expired.response])
            return Decided(expired=expired)
        outcome = replace(outcome, approval=Approval.objects.get(pk=approval.pk))
    return Decided(outcome=outcome)


async def _decide(context: Context, press: ButtonPress, action: str, ref: str) -> tuple[Answer, FollowUp]:
    settings = context.settings
    tz = settings.timezone
    done = await sync_to_async(_decide_now)(press, action, ref, settings.session_grant_seconds)
    if done.refusal is not None:
        return done.refusal, None
    if done.expired is not None:
        text = render_expired(done.expired.event, when=done.expired.approval.decided_at, tz=tz)
        answer = Answer("⌛ This approval has expired: nothing was decided.")
        return answer, _closing(context, done.expired.approval, text)
    outcome = done.outcome
    decided = outcome.approval
    if not outcome.won:
        return Answer(already_decided(decided, tz)), None
    key = "always" if action == ALWAYS else decided.status
    key = decided.option if decided.status == Approval.Status.ANSWERED else key
    text = render_decision(outcome.event, key, press.sender.display, decided.decided_at, tz)
    return Answer(_VERB[decided.status]), _closing(context, decided, text)


def _closing(context: Context, approval: Approval, text: str) -> FollowUp:
    return lambda: approvals.close_messages(context.transport, approval.messages, text)


def already_decided(approval: Approval, tz: str) -> str:
    """What a late press is told, e.g. "Already decided: approved by @alice at 14:03 UTC"."""
    when = f" at {clock(approval.decided_at, tz)}" if approval.decided_at is not None else ""
    if approval.status == Approval.Status.EXPIRED:
        return f"Already closed: expired{when} without an answer."
    verb = approval.get_status_display() if approval.status != Approval.Status.ANSWERED else "answered"
    option = (
        f" ({approval.option})" if approval.status == Approval.Status.ANSWERED and approval.option else ""
    )
    return f"Already decided: {verb}{option} by {approval.decided_by_name or 'someone'}{when}."


def clock(moment: datetime, tz: str) -> str:
    """ "14:03 CET": a time of day as the owner reads it (an unknown zone falls back to UTC)."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    local = moment.astimezone(zone)
    return f"{local:%H:%M} {local.tzname()}"


async def _send_details(context: Context, press: ButtonPress, row: Event) -> None:
    rendered = render(approvals.typed_event(row), style="detailed", tz=context.settings.timezone)
    try:
        for part in rendered.parts:
            await context.transport.send_message(
                press.chat_id, part, parse_mode=rendered.parse_mode, reply_to=press.message_id
            )
    except TransportError as error:
        logger.warning("could not send details of %s to chat %s: %s", row.event_id, press.chat_id, error)


def _response(press: ButtonPress, row: Event, decision: str) -> Response:
    return Response(
        event=row,
        kind=Response.Kind.CALLBACK,
        user_id=press.sender.id,
        username=press.sender.username,
        first_name=press.sender.first_name,
        callback_data=press.data,
        decision=decision,
        task_id=row.task_id,
        original_message_id=press.message_id,
        update_id=press.update_id,
    )


def _recipient(user_id: int) -> Recipient | None:
    """Only active recipients are heard (bridge.recipients.is_allowed); the row also says their role."""
    return Recipient.objects.filter(chat_id=user_id, active=True).first()


def _refuse(sender: Sender, detail: str) -> None:
    logger.warning("refused telegram user %s (%s): %s", sender.id, sender.display, detail)
    AuditEntry.record(
        sender.actor, "access.refused", object_type="telegram_user", object_id=str(sender.id), detail=detail
    )


def event_for_message(chat_id: int, message_id: int, ref: str | None = None) -> Event | None:
    """The event sent as message ``message_id`` to ``chat_id`` (and, with ``ref``, whose buttons carry it).

    Approvals are found by their own record of messages; other events by their deliveries to that chat, looking
    first at those whose task_id is the ref, then at the chat's most recent ones.
    """
    if ref is not None:
        approval = approvals.find_for_message(chat_id, message_id, ref)
        if approval is not None:
            return approval.event
    to_chat = Delivery.objects.filter(recipient__chat_id=chat_id).select_related("event").order_by("-pk")
    by_task = to_chat.filter(event__task_id=ref)[:RECENT_DELIVERIES] if ref else []
    for delivery in chain(by_task, to_chat[:RECENT_DELIVERIES]):
        if message_id in delivery.message_ids:
            event = delivery.event
            if ref is None or callback_ref(approvals.typed_event(event)) == ref:
                return event
    return None
