"""`manage.py up`: everything in one process on the embedded defaults."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from bridge.recipients import seed_from_environment


class Command(BaseCommand):
    help = "Migrate, then serve the web UI and run the bridge pipeline in this one process (Ctrl-C stops)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default: localhost only).")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self._ensure_admin_user()
        seed_from_environment()

        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from cctelegram.asgi import application

        base = f"http://{'localhost' if host in ('127.0.0.1', '::1') else host}:{port}"

        def ready() -> None:
            self.stdout.write(self.style.SUCCESS("CCTelegram is up."))
            self.stdout.write(f"  admin:      {base}/admin/")
            self.stdout.write(f"  health:     {base}/health")
            self.stdout.write(self._login_hint())
            self.stdout.write("Ctrl-C stops.")

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

    def _login_hint(self) -> str:
        if get_user_model().objects.filter(is_superuser=True).exists():
            return "  log in with your admin user."
        return (
            "  no admin user yet: run `python manage.py createsuperuser`, or start with "
            "DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD set."
        )
