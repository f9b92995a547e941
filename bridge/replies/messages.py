"""Messages to the bot: text replies for the agent, and the bot's own commands.

Contract:
- From anyone who is not an active Recipient: ignored (no answer, which would tell a stranger the bot is
  alive) and audited as access.refused.
- A reply (text, or anything else as its caption / "[non-text message]") is stored and written as a response
  file; a reply to one of the bridge's messages carries that event's event_id and task_id. It is acknowledged
  with a ⚡ reaction, and in nomad mode also answered with a short menu (status, pending approvals).
- Commands are for the bridge, not the agent (not written as responses): /start, /help, /bridge (status
  summary), and /cct:local, /cct:nomad, /cct:mute to switch the mode (approvers only, audited as
  telegram:<id>). An unknown /command is an ordinary reply.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async

from bridge import health
from bridge.channel import inbox as channel
from bridge.channel import pairing as channel_pairing
from bridge.models import Approval, AuditEntry, BridgeSettings, Mode, Recipient, Response, bump_settings
from bridge.replies.callbacks import clock, event_for_message
from bridge.telegram.escape import PARSE_MODE, escape_html
from bridge.telegram.transport import TransportError

if TYPE_CHECKING:
    from bridge.replies.handler import Context
    from bridge.replies.inbound import IncomingMessage

logger = logging.getLogger(__name__)

ACK_REACTION = "⚡"
MENU_APPROVALS = 5
START = (
    "🚀 <b>CCTelegram bridge is running.</b>\n\n"
    "✅ You are allowed to answer: buttons and replies reach the agent.\n"
    "Send /help for what the bot understands."
)
HELP = (
    "🤖 <b>CCTelegram bridge</b>\n\n"
    "/bridge: status (mode, queue, pending approvals, last delivery)\n"
    "/cct:local: deliver everything; replies get a ⚡\n"
    "/cct:nomad: deliver everything; replies get a menu\n"
    "/cct:mute: only approvals and critical alerts\n\n"
    "Buttons answer approvals and completions. Any other message is passed to the agent as a reply, and a reply "
    "to one of the bridge's messages says which event it answers.\n\n"
    "This is a notification bridge, not a remote shell: nothing you send is run as a command."
)
MODES = {"/cct:local": Mode.LOCAL, "/cct:nomad": Mode.NOMAD, "/cct:mute": Mode.MUTED}
_SWITCHED = {
    Mode.LOCAL: "💻 Local mode: everything is delivered; replies are acknowledged with ⚡.",
    Mode.NOMAD: "🧳 Nomad mode: everything is delivered; replies are answered with a menu.",
    Mode.MUTED: "🔇 Muted: only approvals and critical alerts are sent until /cct:local or /cct:nomad.",
}


@dataclass(frozen=True, slots=True)
class Intake:
    """What the one trip to the database (`intake`) made of a message, for `handle_message` to act on."""

    recipient: Recipient | None
    """The sender; None when refused (already audited)."""
    pairing_code: str = ""
    """Refused under the pairing policy: the code to answer with."""
    response: Response | None = None
    """An ordinary reply: its Response, not saved yet (the writer stores it and writes its file)."""
    files_for_channel: channel.Addressed | None = None
    """The channel's share of a message whose files are downloaded before it is kept (a text is kept already)."""


def intake(message: IncomingMessage, bot_username: str) -> Intake:
    """All a message needs from the database, in one trip (the handler's, with the batch's own look-ups): the
    sender (and a group's chat) looked up in one query; a stranger refused and audited, and under the pairing
    policy given a code; for an ordinary reply, its Response built and its share for the channel sessions kept
    (bridge.channel.inbox.keep, which pokes the session that gets it) unless files must be fetched first.
    Raises DatabaseError."""
    chats = {message.sender.id, message.chat_id}
    heard = {r.chat_id: r for r in Recipient.objects.filter(chat_id__in=chats, active=True)}
    recipient = heard.get(message.sender.id)
    if recipient is None:
        AuditEntry.record(
            message.sender.actor,
            "access.refused",
            object_type="telegram_user",
            object_id=str(message.sender.id),
            detail="message ignored: not an active recipient",
        )
        return Intake(None, pairing_code=channel_pairing.code_to_offer(message))
    if message.command in COMMANDS:
        return Intake(recipient)
    # First for the channel: a Claude Code session is waiting on it, the response file's reader is not.
    share = channel.addressed(message, heard, bot_username)
    if share is not None and not message.files:
        channel.keep(message, share)
        share = None
    return Intake(recipient, response=_response(message), files_for_channel=share)


async def handle_message(context: Context, message: IncomingMessage, taken: Intake) -> None:
    """Act on ``message`` once `intake` has taken it in (``taken``): answer, run a command, or pass it on."""
    recipient = taken.recipient
    if recipient is None:
        # No answer, which would tell a stranger the bot is alive; a code under the pairing policy only.
        logger.warning("ignored a message from telegram user %s: not an active recipient", message.sender.id)
        if taken.pairing_code:
            await channel_pairing.offer(context, message, taken.pairing_code)
        return
    command = message.command
    if command in COMMANDS:
        await COMMANDS[command](context, message, recipient)
        return
    if taken.files_for_channel is not None:
        await channel.keep_with_files(context, message, taken.files_for_channel)
    if taken.response is not None:
        await context.writer.submit(taken.response)
    if context.settings.mode == Mode.NOMAD:
        await _reply(context, message, await sync_to_async(menu)(context.settings.timezone))
        return
    try:
        await context.transport.set_reaction(message.chat_id, message.message_id, ACK_REACTION)
    except TransportError as error:
        logger.info("no ⚡ reaction in chat %s (%s); acknowledging with a message", message.chat_id, error)
        await _reply(context, message, ACK_REACTION)


def _response(message: IncomingMessage) -> Response:
    """An unsaved Response for ``message`` (the writer stores it), linked to the event it replies to, if any."""
    event = None
    if message.reply_to_message_id is not None:
        event = event_for_message(message.chat_id, message.reply_to_message_id)
    return Response(
        event=event,
        kind=Response.Kind.MESSAGE,
        user_id=message.sender.id,
        username=message.sender.username,
        first_name=message.sender.first_name,
        message_text=message.text,
        message_type=message.message_type,
        task_id=event.task_id if event is not None else "",
        original_message_id=message.reply_to_message_id,
        update_id=message.update_id,
    )


async def _reply(context: Context, message: IncomingMessage, text: str) -> None:
    try:
        await context.transport.send_message(message.chat_id, text, parse_mode=PARSE_MODE)
    except TransportError as error:
        logger.warning("could not answer chat %s: %s", message.chat_id, error)


# --- commands ----------------------------------------------------------------------------------------------------
async def _start(context: Context, message: IncomingMessage, recipient: Recipient) -> None:
    await _reply(context, message, START)


async def _help(context: Context, message: IncomingMessage, recipient: Recipient) -> None:
    await _reply(context, message, HELP)


async def _status(context: Context, message: IncomingMessage, recipient: Recipient) -> None:
    await _reply(context, message, await sync_to_async(status_summary)(context.settings.timezone))


async def _switch(context: Context, message: IncomingMessage, recipient: Recipient) -> None:
    mode = MODES[message.command or ""]
    actor = message.sender.actor
    if recipient.role != Recipient.Role.APPROVER:
        await sync_to_async(AuditEntry.record)(
            actor, "access.refused", recipient, detail=f"viewer tried {message.command}: approvers only"
        )
        await _reply(context, message, "Only approvers can switch the mode.")
        return
    await sync_to_async(_switch_mode)(actor, mode)
    await _reply(context, message, _SWITCHED[mode])


def _switch_mode(actor: str, mode: str) -> None:
    from bridge.operations import announce_settings

    current = bump_settings(actor, note="from Telegram", mode=mode)
    announce_settings(current.version)


COMMANDS: dict[str, Callable[[Context, IncomingMessage, Recipient], Awaitable[None]]] = {
    "/start": _start,
    "/help": _help,
    "/bridge": _status,
    **dict.fromkeys(MODES, _switch),
}


def status_summary(tz: str) -> str:
    """/bridge: health, mode, queue depth, pending approvals and the last delivery, as HTML."""
    report = health.check()
    mode = BridgeSettings.load().get_mode_display()
    pending = Approval.objects.filter(status=Approval.Status.PENDING).count()
    last = report.last_delivery
    lines = [
        "🚀 <b>CCTelegram bridge</b>",
        f"Status: {escape_html(report.status)} · workers: {report.workers}",
        f"Mode: {escape_html(mode)}",
        f"Queue: {report.queue_depth} waiting",
        f"Pending approvals: {pending}",
        f"Last delivery: {escape_html(_when(last, tz)) if last else 'none yet'}",
    ]
    lines += [f"⚠️ {escape_html(problem)}" for problem in report.problems]
    return "\n".join(lines)


def menu(tz: str) -> str:
    """The nomad-mode answer to a reply: received, the status in one line, the pending approvals."""
    waiting = Approval.objects.filter(status=Approval.Status.PENDING)
    pending = list(waiting.select_related("event").order_by("expires_at")[:MENU_APPROVALS])
    lines = [f"⚡ Passed to the agent.\n\n🧳 Nomad mode · {waiting.count()} pending approval(s)"]
    for approval in pending:
        lines.append(
            f"• ⏳ {escape_html(approval.event.title)} (answer by {escape_html(clock(approval.expires_at, tz))})"
        )
    lines.append("\n/bridge status · /cct:local · /cct:mute")
    return "\n".join(lines)


def _when(iso: str, tz: str) -> str:
    return clock(datetime.fromisoformat(iso), tz)
