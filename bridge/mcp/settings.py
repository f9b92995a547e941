"""Django settings for the MCP server process: the project's settings, loading only what the ORM needs.

An MCP server is started by every agent session and lives as long as it, so its footprint is paid many times
over. It reads and writes the bridge's models and nothing else: no admin, auth, sessions, channels, daphne or
prometheus middleware, no URLconf. Measured: Django set up with the full settings 72 MB RSS, with these 41 MB;
with the MCP SDK loaded, 100 MB against 78 MB. Everything else (database, folders, secrets, Redis) is the
project's own configuration from the same environment, so both processes agree on where things are.

Selected with DJANGO_SETTINGS_MODULE=bridge.mcp.settings (manage.py does it for `mcp_server`).
"""

from __future__ import annotations

from cctelegram.settings import *  # noqa: F403

INSTALLED_APPS = ["bridge"]
MIDDLEWARE: list[str] = []
TEMPLATES: list[dict] = []
# This process serves no Django URL (its HTTP transport is the SDK's app): no URLconf, which would import the admin.
ROOT_URLCONF = None

# The full settings module, for the processes this one starts (`run_bridge` needs every app).
FULL_SETTINGS_MODULE = "cctelegram.settings"

# On stdio, stdout carries JSON-RPC only: every log line goes to stderr, whatever the project's LOGGING says.
LOGGING = {
    **LOGGING,  # noqa: F405
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    },
}

# SQLite keeps a 2 MB page cache per connection by default; this process appends events (a few pages of each
# index) and reads little, so a small cache serves it as well and keeps it lean (the OS caches the file anyway).
# Its write-ahead log is checkpointed by a thread of its own shortly after sends (bridge.mcp.services); SQLite's
# own checkpoint, run inside the commit that takes the log past the threshold, stalls that send 20-100 ms. At
# 1,000 pages (the default), a burst of sends reaches it before the thread's next round (about 16 pages a send);
# at 10,000 it is the safety net for when that thread cannot keep up.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    _options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
    _options["init_command"] = (
        _options.get("init_command", "") + " PRAGMA cache_size=-256; PRAGMA wal_autocheckpoint=10000;"
    )
