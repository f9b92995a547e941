"""The emulator inside the web process: its Bot API under /sandbox/bot<token>/..., one state per process.

Only the Bot API and file downloads are routed to it (the bridge reaches them with the sandbox token, as it would
reach Telegram); the emulator's control API is not exposed: the sandbox chat page drives the state in-process,
behind login.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings

from bridge.telegram.emulator import EmulatorState, build_app

PREFIX = "/sandbox"
_ROUTED = (f"{PREFIX}/bot", f"{PREFIX}/file/bot")


@cache
def emulator_state() -> EmulatorState:
    return EmulatorState(tokens={settings.CC_TELEGRAM_SANDBOX_TOKEN}, bot_username="cctelegram_sandbox_bot")


def with_emulator(django_app):
    """An ASGI app sending the sandbox's Bot API paths to the emulator and everything else to Django."""
    emulator_app = build_app(emulator_state(), prefix=PREFIX)

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(_ROUTED):
            await emulator_app(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return app
