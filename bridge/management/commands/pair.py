"""`manage.py pair CODE`: let the Telegram user who was given CODE talk to the bot (pairing policy)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Confirm (or with --refuse, refuse) a pairing code that the bot gave an unknown Telegram user under "
        "CC_TELEGRAM_ACCESS_POLICY=pairing. Confirming makes them a Recipient; both are audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("code", help="The 6-character code the user was sent.")
        parser.add_argument("--refuse", action="store_true", help="Refuse the request instead.")
        parser.add_argument("--actor", default="cli", help="Who decides, for the audit log (default: cli).")

    def handle(self, *args, code: str, refuse: bool, actor: str, **options):
        from bridge.channel.pairing import PairingError, decide

        try:
            request = decide(code, actor, confirm=not refuse)
        except PairingError as error:
            raise CommandError(str(error)) from None
        who = f"@{request.username}" if request.username else (request.first_name or str(request.user_id))
        verb = "refused" if refuse else "confirmed: they are now a Recipient"
        self.stdout.write(f"Pairing {request.code} for {who} ({request.user_id}) {verb}.")
