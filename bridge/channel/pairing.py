"""The pairing policy (CC_TELEGRAM_ACCESS_POLICY=pairing): how a stranger becomes a Recipient, with an operator's yes.

A direct message from someone who is not a Recipient is still refused (and audited by bridge.replies.messages),
but is answered with a 6-character code. An operator who knows who that is confirms it (`manage.py pair CODE`,
or in the admin), which creates the Recipient; or refuses it (`manage.py pair --refuse CODE`). A code lives
CODE_TTL; asking again while one is pending gets the same code, so a stranger cannot mint codes in bulk.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bridge.models import AuditEntry, PairingRequest, Recipient
from bridge.telegram.transport import TransportError

if TYPE_CHECKING:
    from bridge.replies.handler import Context
    from bridge.replies.inbound import IncomingMessage

logger = logging.getLogger(__name__)

CODE_TTL = timedelta(hours=1)
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by an operator


class PairingError(Exception):
    """The code is unknown, expired or already decided."""


def enabled() -> bool:
    return settings.CC_TELEGRAM_ACCESS_POLICY == "pairing"


def code_to_offer(message: IncomingMessage) -> str:
    """The pairing code to answer a stranger's direct message with, under the pairing policy; "" otherwise (no
    answer at all). Sync: the replies handler asks in the trip that refused the message."""
    if not enabled() or message.chat_id <= 0:
        return ""
    return code_for(message).code


async def offer(context: Context, message: IncomingMessage, code: str) -> None:
    """Answer a stranger's direct message with their pairing ``code`` (from `code_to_offer`)."""
    text = (
        f"🔐 This bot only talks to people its operator has approved.\n\nYour pairing code: <code>{code}"
        f"</code>\nAsk the operator to run <code>python manage.py pair {code}</code> within the hour."
    )
    try:
        await context.transport.send_message(message.chat_id, text, parse_mode="HTML")
    except TransportError as error:
        logger.warning("could not send a pairing code to %s: %s", message.chat_id, error)


def code_for(message: IncomingMessage) -> PairingRequest:
    """The sender's pending, unexpired request, or a new one."""
    now = timezone.now()
    pending = PairingRequest.objects.filter(
        user_id=message.sender.id, status=PairingRequest.Status.PENDING, expires_at__gt=now
    ).first()
    if pending is not None:
        return pending
    for _ in range(5):
        try:
            request = PairingRequest.objects.create(
                code="".join(secrets.choice(ALPHABET) for _ in range(6)),
                user_id=message.sender.id,
                username=message.sender.username,
                first_name=message.sender.first_name,
                expires_at=now + CODE_TTL,
            )
        except IntegrityError:
            continue  # the code was taken: draw again
        AuditEntry.record(message.sender.actor, "pairing.request", request, detail=f"code {request.code}")
        return request
    raise RuntimeError("could not draw a free pairing code")


def decide(code: str, actor: str, *, confirm: bool) -> PairingRequest:
    """Confirm (creating the Recipient as a viewer: heard, but deciding no approvals until an operator makes them
    an approver in the admin; an existing one is reactivated as it was) or refuse.

    Raises PairingError for an unknown, expired or already decided code.
    """
    now = timezone.now()
    status = PairingRequest.Status.CONFIRMED if confirm else PairingRequest.Status.REFUSED
    with transaction.atomic():
        changed = PairingRequest.objects.filter(
            code=code.strip().upper(), status=PairingRequest.Status.PENDING, expires_at__gt=now
        ).update(status=status, decided_by=actor[:200], decided_at=now)
        if not changed:
            raise PairingError(f"no pending pairing code {code!r} (unknown, expired or already decided)")
        request = PairingRequest.objects.get(code=code.strip().upper())
        if confirm:
            recipient, _ = Recipient.objects.get_or_create(
                chat_id=request.user_id,
                defaults={
                    "display_name": request.username or request.first_name,
                    "role": Recipient.Role.VIEWER,
                },
            )
            if not recipient.active:
                recipient.active = True
                recipient.save(update_fields=["active", "updated_at"])
            AuditEntry.record(actor, "pairing.confirm", recipient, detail=f"code {request.code}")
        else:
            AuditEntry.record(actor, "pairing.refuse", request, detail=f"user {request.user_id}")
    return request
