"""Approvals: an approval_request gets a row with an unguessable token before its first message is sent."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from bridge.events.schema import Event as TypedEvent
from bridge.models import Approval
from bridge.telegram.keyboards import callback_ref, new_token


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
