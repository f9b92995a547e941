"""`manage.py replay_dead_letters`: send every dead letter again, with a progress bar."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from bridge.models import AuditEntry
from bridge.operations import on_queue, replay_dead_letters

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Requeue every dead letter: queue entries the queue gave up on and deliveries that went dead. "
        "Progress goes to stderr, the summary to stdout."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=100, help="Dead letters requeued per round trip.")

    def handle(self, *args, batch: int, **options):
        if batch < 1:
            self.stderr.write("--batch must be at least 1")
            raise SystemExit(2)
        try:
            replayed = on_queue(replay_dead_letters, None, batch=batch, progress=self._progress)
        finally:
            self._end_progress()
        AuditEntry.record(
            "manage.py replay_dead_letters",
            "dead_letters.requeue",
            detail=f"{replayed.letters} queue dead letters, {replayed.events} events with dead deliveries",
        )
        if not (replayed.letters or replayed.events):
            self.stdout.write("No dead letters.")
            return
        self.stdout.write(
            f"Requeued {replayed.letters} queue dead letters and {replayed.events} events with dead deliveries."
        )

    def _progress(self, done: int, total: int) -> None:
        """A text bar redrawn in place (\\r): one line on a terminal, however many batches."""
        if total == 0:
            return
        filled = BAR_WIDTH * done // total
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stderr.write(f"\r[{bar}] {done}/{total} ({100 * done // total}%)", ending="")
        self.stderr.flush()
        self._drawn = True

    def _end_progress(self) -> None:
        if getattr(self, "_drawn", False):
            self.stderr.write("")
