"""ASGI entry point: HTTP (Django, plus the sandbox's Bot API emulator) and websockets (the dashboard, behind
login and origin checks)."""

from __future__ import annotations

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cctelegram.settings")
# The admin's own CSS and JS, served by the app itself so one process needs no separate static server.
django_asgi_app = ASGIStaticFilesHandler(get_asgi_application())

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from bridge.probes import with_probes  # noqa: E402
from cctelegram.routing import websocket_routes  # noqa: E402

http_app = django_asgi_app
if settings.CC_TELEGRAM_SANDBOX:
    from bridge.sandbox.mount import with_emulator

    http_app = with_emulator(django_asgi_app)
# Probes and scrapes (/health*, /metrics) are answered before Django's middleware: see bridge/probes.py.
http_app = with_probes(http_app)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_routes))),
    }
)
