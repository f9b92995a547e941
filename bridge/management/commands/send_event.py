"""`manage.py send_event TYPE TITLE`: emit an event from a shell, through the same path as event files."""

from __future__ import annotations

import asyncio
import json

from django.core.management.base import BaseCommand, CommandError

from bridge.events.limits import RejectedEvent
from bridge.ingest.store import EventStore
from bridge.ingest.submit import submit
from bridge.queue import QueueError, get_queue


class Command(BaseCommand):
    help = "Queue one event (durably) for delivery, as an agent's event file would."

    def add_arguments(self, parser):
        parser.add_argument(
            "type", help="Event type, e.g. task_completion (see fixtures/events/ for all 47)."
        )
        parser.add_argument("title")
        parser.add_argument("--description", default="")
        parser.add_argument("--source", default="claude-code")
        parser.add_argument("--task-id", default="")
        parser.add_argument("--data", default="{}", help='JSON object, e.g. \'{"status": "completed"}\'')

    def handle(self, *args, **options):
        try:
            data = json.loads(options["data"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--data is not valid JSON: {exc}") from None
        fields = {
            "type": options["type"],
            "title": options["title"],
            "description": options["description"],
            "source": options["source"],
            "data": data,
        }
        if options["task_id"]:
            fields["task_id"] = options["task_id"]
        try:
            event, stored = asyncio.run(self._submit(fields))
        except RejectedEvent as exc:
            raise CommandError(f"event refused ({exc.code}): {exc.reason}") from None
        except QueueError as exc:
            raise CommandError(f"the event could not be queued: {exc}") from None
        note = " (duplicate, not queued again)" if stored.duplicate else ""
        self.stdout.write(f"queued {event.type} {event.event_id}{note}")

    async def _submit(self, fields):
        queue = get_queue()
        try:
            return await submit(EventStore(queue), fields, origin="shell")
        finally:
            await queue.close()
