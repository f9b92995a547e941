"""`manage.py purge_history --days N`: delete finished history older than N days (as the admin's purge does)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from bridge.operations import purge_history, purge_preview


class Command(BaseCommand):
    help = (
        "Delete finished events older than N days with their deliveries, and responses as old. Events still "
        "queued or being sent, and audit entries, are kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, required=True, help="Keep the last N days (N >= 1).")
        parser.add_argument("--dry-run", action="store_true", help="Only say what would be deleted.")

    def handle(self, *args, days: int, dry_run: bool, **options):
        if days < 1:
            raise CommandError("--days must be at least 1")
        if dry_run:
            preview = purge_preview(days)
            self.stdout.write(
                f"Would delete {preview.events} events, {preview.deliveries} deliveries and "
                f"{preview.responses} responses older than {days} days."
            )
            return
        purged = purge_history(days, "manage.py purge_history")
        self.stdout.write(
            f"Deleted {purged.events} events, {purged.deliveries} deliveries and {purged.responses} responses "
            f"older than {days} days."
        )
