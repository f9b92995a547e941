"""`manage.py mcp_server`: the MCP server agents talk to, on stdio (the default) or streamable HTTP.

On stdio, stdout carries JSON-RPC and nothing else: logging goes to stderr (bridge.mcp.settings says so, and
`bridge.mcp.stdio.logs_to_stderr` makes sure of it whatever the settings), and while it serves, file descriptor 1 points at
stderr (bridge.mcp.stdio), so even a stray print or a child's output cannot corrupt the stream. The process is
lean when started with DJANGO_SETTINGS_MODULE=bridge.mcp.settings (only the bridge app is loaded).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Run the MCP server: stdio for Claude Code (`claude mcp add cctelegram -- python manage.py mcp_server`), "
        "or --transport http --port N for streamable HTTP with bearer-token auth (MCP_API_KEYS)."
    )
    # The system checks import the URLconf and the admin: a second of start-up for a server that serves neither.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
        parser.add_argument(
            "--host", default="127.0.0.1", help="HTTP only: address to listen on (default 127.0.0.1)."
        )
        parser.add_argument("--port", type=int, default=8765, help="HTTP only: port (default 8765).")
        parser.add_argument(
            "--channel",
            action="store_true",
            help="Run as a Claude Code channel (stdio only): Telegram chat pushed into the session, reply/react/"
            "edit_message tools, permission prompts relayed (bridge.channel).",
        )

    def handle(self, *args, transport: str, host: str, port: int, **options):
        from bridge.mcp.stdio import logs_to_stderr

        logs_to_stderr()
        if options.get("channel"):
            if transport != "stdio":
                raise CommandError(
                    "--channel runs on stdio: Claude Code starts a channel as its own subprocess"
                )
            import anyio

            from bridge.channel.server import build_channel_server

            anyio.run(build_channel_server().run_stdio_async)
            return
        if transport == "http":
            from bridge.mcp import http

            try:
                keys = http.check_keys(settings.MCP_API_KEYS)
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from None
            from bridge.mcp.server import build_server

            http.run(build_server(), host=host, port=port, keys=keys)
            return
        from bridge.mcp import stdio

        if stdio.on_pipes():
            # Before the SDK is even imported: bridge.mcp.frontend answers initialize at once.
            import asyncio

            from bridge.mcp import frontend

            asyncio.run(frontend.serve(_build_server))
            return
        import anyio

        anyio.run(_build_server().run_stdio_async)


def _build_server():
    from bridge.mcp.server import build_server

    return build_server()
