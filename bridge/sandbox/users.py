"""Who the sandbox chat page speaks as: one Telegram user, the first active approver.

With no recipient at all nothing would be sent, so `manage.py up` makes a sandbox approver when the sandbox is on
and the recipient table is empty: a newcomer sees the whole loop without configuring anything.
"""

from __future__ import annotations

import re

from bridge.models import AuditEntry, Recipient

SANDBOX_CHAT_ID = 1000000002
SANDBOX_NAME = "sandbox"
_USERNAME = re.compile(r"[^A-Za-z0-9_]")


def ensure_sandbox_recipient() -> Recipient | None:
    """Create the sandbox approver when there is no recipient at all; the one created, else None."""
    if Recipient.objects.exists():
        return None
    recipient, created = Recipient.objects.get_or_create(
        chat_id=SANDBOX_CHAT_ID, defaults={"display_name": SANDBOX_NAME, "role": Recipient.Role.APPROVER}
    )
    if not created:
        return None
    AuditEntry.record("bridge", "recipient.seed", recipient, detail="sandbox user (no recipients configured)")
    return recipient


def sandbox_recipient() -> Recipient | None:
    """The private chat the page shows: the first active approver (group chats have negative ids)."""
    return (
        Recipient.objects.filter(active=True, role=Recipient.Role.APPROVER, chat_id__gt=0)
        .order_by("chat_id")
        .first()
    )


def telegram_user(recipient: Recipient, operator: str) -> dict:
    """The Telegram user the emulator reports for the logged-in operator pressing and typing in that chat."""
    username = _USERNAME.sub("_", operator)[:32]
    return {"id": recipient.chat_id, "first_name": recipient.display_name or "Sandbox", "username": username}
