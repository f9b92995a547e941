"""`manage.py up`: everything in one process on the embedded defaults."""

from __future__ import annotations

import asyncio
import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from bridge.recipients import seed_from_environment


class Command(BaseCommand):
    help = "Migrate, then serve the web UI and run the bridge pipeline in this one process (Ctrl-C stops)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default="127.0.0.1", help="Interface to listen on (default: localhost only)."
        )
        parser.add_argument("--port", type=int, default=None, help="Default: CC_TELEGRAM_PORT (8000).")

    def handle(self, *args, host: str, port: int | None, **options):
        port = port or settings.CC_TELEGRAM_PORT
        if settings.CC_TELEGRAM_SANDBOX and not os.environ.get("TELEGRAM_API_BASE_URL"):
            # The sandbox's Bot API is served by this very process, on the port chosen here.
            settings.TELEGRAM_API_BASE_URL = f"http://127.0.0.1:{port}/sandbox/bot"
        call_command("migrate", interactive=False, verbosity=0)
        self._ensure_admin_user()
        seed_from_environment()
        sandbox_user = None
        if settings.CC_TELEGRAM_SANDBOX:
            from bridge.sandbox.users import ensure_sandbox_recipient

            sandbox_user = ensure_sandbox_recipient()

        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from cctelegram.asgi import application

        base = f"http://{'localhost' if host in ('127.0.0.1', '::1') else host}:{port}"

        from twisted.internet import defer, reactor

        from bridge.pipeline import Pipeline
        from bridge.telegram.send import build_sender
        from bridge.worker import WorkerHost

        bridge = WorkerHost(Pipeline(sender_factory=build_sender))

        async def start_bridge() -> None:
            try:
                await bridge.start()
            except Exception as exc:
                self.stderr.write(f"the bridge pipeline could not start: {exc}")
                reactor.stop()

        def stop_bridge():
            # Drain the pipeline before the reactor (and its event loop) stops.
            return defer.Deferred.fromFuture(asyncio.ensure_future(bridge.stop()))

        def ready() -> None:
            asyncio.get_event_loop().create_task(start_bridge())
            reactor.addSystemEventTrigger("before", "shutdown", stop_bridge)
            self.stdout.write(self.style.SUCCESS("CCTelegram is up."))
            self.stdout.write(f"  admin:      {base}/admin/")
            self.stdout.write(f"  dashboard:  {base}/dashboard/")
            if settings.CC_TELEGRAM_SANDBOX:
                self.stdout.write(
                    f"  sandbox:    {base}/sandbox/  (no TELEGRAM_BOT_TOKEN: the built-in emulator)"
                )
            self.stdout.write(f"  health:     {base}/health")
            self.stdout.write(f"  metrics:    {base}/metrics")
            self.stdout.write(f"  events in:  {settings.CC_TELEGRAM_EVENTS_DIR}")
            self.stdout.write(f"  responses:  {settings.CC_TELEGRAM_RESPONSES_DIR}")
            if sandbox_user is not None:
                self.stdout.write(
                    f"  no recipients were configured: created the sandbox approver {sandbox_user.chat_id} "
                    f"({sandbox_user.display_name}); you are that user on the sandbox page."
                )
            self.stdout.write(self._login_hint(base))
            self.stdout.write("Ctrl-C stops.")
            self.stdout.flush()  # a supervisor or test reading a pipe sees the URLs at once

        Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            ready_callable=ready,
            verbosity=0,
        ).run()
        self.stdout.write("Stopped.")

    def _ensure_admin_user(self) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not (username and password):
            return
        users = get_user_model()
        user, created = users.objects.get_or_create(username=username, defaults={"is_staff": True})
        if created:
            user.is_superuser = True
            user.set_password(password)
            user.save()

    def _login_hint(self, base: str) -> str:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        if username and os.environ.get("DJANGO_SUPERUSER_PASSWORD"):
            return (
                f"  log in at {base}/admin/ as {username!r} with the password in DJANGO_SUPERUSER_PASSWORD."
            )
        if get_user_model().objects.filter(is_superuser=True).exists():
            return f"  log in at {base}/admin/ with your admin user."
        return (
            "  no admin user yet: run `python manage.py createsuperuser`, or start with "
            "DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD set."
        )
