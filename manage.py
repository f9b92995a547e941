#!/usr/bin/env python
"""Django's command-line utility for CCTelegram."""

import os
import sys


def main() -> None:
    # The MCP server starts with every agent session: it loads only the bridge app (lean and quick to start).
    if sys.argv[1:2] == ["mcp_server"]:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridge.mcp.settings")
        if (
            sys.argv[2:] == []
        ):  # on stdio, as agents start it: answers before Django loads (bridge.mcp.frontend)
            from bridge.mcp.frontend import main as serve_stdio

            if serve_stdio():
                return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cctelegram.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
