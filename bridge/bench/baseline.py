"""The naive sender the e2e figures are compared with: what the simplest bot does.

It watches the folder with watchfiles at its defaults, and for each new file reads it, ``json.load``s it and
awaits ``bot.send_message`` with python-telegram-bot, one at a time, then deletes the file. No database, no queue,
no routing, no rate limits, no retries: nothing survives a crash or a 429, which is what the bridge adds. Run
against the same emulator with the same events, it shows what that costs (or saves) in latency and throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

from telegram import Bot
from watchfiles import Change, awatch


async def naive_sender(
    events_dir: str, *, token: str, base_url: str, chat_id: int, stop: asyncio.Event
) -> int:
    """Send every event file that appears in ``events_dir`` until ``stop`` is set; returns how many it sent."""
    sent = 0
    async with Bot(token, base_url=base_url) as bot:
        async for changes in awatch(events_dir, stop_event=stop):
            for change, path in sorted(changes, key=lambda c: c[1]):
                if change == Change.deleted or not path.endswith(".json"):
                    continue
                try:
                    # Blocking reads on the event loop: what the simplest bot does, and part of its cost.
                    with open(path) as file:  # noqa: ASYNC230
                        event = json.load(file)
                except (OSError, ValueError):
                    continue
                await bot.send_message(chat_id, f"{event['title']}\n{event.get('description', '')}")
                sent += 1
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    return sent
