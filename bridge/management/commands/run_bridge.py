"""`manage.py run_bridge`: the bridge pipeline alone; any number of these share one Redis."""

from __future__ import annotations

import asyncio
import signal

from django.core.management.base import BaseCommand

from bridge.recipients import seed_from_environment


class Command(BaseCommand):
    help = "Run the bridge pipeline (watcher, queue consumer, sender, reply poller) until SIGTERM or Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="Process what is waiting (files and queue), then exit."
        )
        parser.add_argument(
            "--no-send", action="store_true", help="Only ingest: files in, queue entries out."
        )

    def handle(self, *args, once: bool, no_send: bool, **options):
        seed_from_environment()
        asyncio.run(self._main(once=once, send=not no_send))

    async def _main(self, *, once: bool, send: bool) -> None:
        from bridge.pipeline import Pipeline

        sender_factory = None
        if send:
            # Imported only when sending: an ingest-only bridge needs neither python-telegram-bot nor its memory.
            from bridge.telegram.send import build_sender

            sender_factory = build_sender
        pipeline = Pipeline(sender_factory=sender_factory)
        if once:
            try:
                summary = await pipeline.run_once()
            finally:
                await pipeline.queue.close()
            line = (
                f"stored {summary.stored}, duplicates {summary.duplicates}, quarantined {summary.quarantined}"
            )
            if send:
                line += f", sent from queue {summary.claimed}"
            self.stdout.write(line)
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        from bridge.worker import WorkerHost

        host = WorkerHost(pipeline)
        await host.start()
        self.stdout.write(f"bridge {pipeline.name} running; watching {pipeline.events_dir}")
        await stop.wait()
        self.stdout.write("stopping: draining the pipeline")
        await host.stop()
        self.stdout.write("stopped")
