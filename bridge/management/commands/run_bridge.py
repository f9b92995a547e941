"""`manage.py run_bridge`: the bridge pipeline alone; any number of these share one Redis."""

from __future__ import annotations

import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

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
        parser.add_argument(
            "--metrics-port",
            type=int,
            help="Also serve /metrics on this port (CC_TELEGRAM_METRICS_TOKEN applies): for a worker on a machine "
            "that shares no CC_TELEGRAM_METRICS_DIR with the web process.",
        )
        parser.add_argument(
            "--metrics-host",
            default="127.0.0.1",
            help="Interface for --metrics-port (default: localhost only; 0.0.0.0 for a remote Prometheus).",
        )

    def handle(
        self, *args, once: bool, no_send: bool, metrics_port: int | None, metrics_host: str, **options
    ):
        from bridge import metrics

        seed_from_environment()
        metrics.forget_dead_processes()
        server = None
        if metrics_port:
            try:
                server = metrics.serve(metrics_port, metrics_host)
            except OSError as exc:
                raise CommandError(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc}") from exc
            self.stdout.write(f"metrics on http://{metrics_host}:{metrics_port}/metrics")
        try:
            asyncio.run(self._main(once=once, send=not no_send))
        finally:
            if server is not None:
                server.shutdown()
            metrics.process_exited()

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
        # Starting waits for the Bot API (it retries while Telegram is unreachable): a SIGTERM meanwhile still stops.
        starting = asyncio.create_task(host.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a bad token and other permanent failures end the command here, with their reason
            self.stdout.write(f"bridge {pipeline.name} running; watching {pipeline.events_dir}")
            await stopping
        else:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        self.stdout.write("stopping: draining the pipeline")
        await host.stop()
        self.stdout.write("stopped")
