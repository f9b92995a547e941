"""Recipients: who may receive events and answer them."""

from __future__ import annotations

from django.conf import settings

from bridge.models import AuditEntry, Recipient


def seed_from_environment() -> list[Recipient]:
    """Make every id in TELEGRAM_ALLOWED_USERS an active approver, keeping what the admin changed since.

    Returns the recipients created. Ids already present are left as they are: an operator who demoted someone to
    viewer or deactivated them in the admin is not overruled at the next start.
    """
    created = []
    for chat_id in settings.TELEGRAM_ALLOWED_USERS:
        recipient, was_created = Recipient.objects.get_or_create(
            chat_id=chat_id, defaults={"display_name": f"user {chat_id}", "role": Recipient.Role.APPROVER}
        )
        if was_created:
            created.append(recipient)
            AuditEntry.record("bridge", "recipient.seed", recipient, detail="from TELEGRAM_ALLOWED_USERS")
    return created


def is_allowed(user_id: int) -> bool:
    """Only active recipients are heard."""
    return Recipient.objects.filter(chat_id=user_id, active=True).exists()
