"""A Telegram Bot API emulator: real HTTP, Telegram's rules and errors, no Telegram.

The bridge, its tests, its benchmark and the sandbox chat page talk to it exactly as to Telegram, through
python-telegram-bot with ``base_url`` pointing here. Public pieces:

``EmulatorState``   everything the emulator knows (messages, updates, calls, faults, limits); thread-safe reads.
``build_app``       the ASGI app (Starlette) over a state: Bot API, file downloads, control API.
``EmulatorServer``  that app on a free loopback port in a background thread (``base_url``, ``control_url``).
``EmulatorProcess`` the same in a child process, sharing no GIL with the code under test (for benchmarks).
``inject_message`` / ``inject_callback``   the user's side, in-process.

No Django here: the emulator also runs alone (``python -m bridge.telegram.emulator``).
"""

from __future__ import annotations

from .app import build_app
from .injection import inject_callback, inject_message
from .process import EmulatorProcess
from .server import EmulatorServer
from .state import TEST_TOKEN, EmulatorState

__all__ = [
    "TEST_TOKEN",
    "EmulatorProcess",
    "EmulatorServer",
    "EmulatorState",
    "build_app",
    "inject_callback",
    "inject_message",
]
