"""Fixtures for tests that talk to Telegram through the project's Bot API emulator, over real HTTP.

One emulator server runs for the whole session (``emulator_server``); ``emulator`` hands it to a test with its
state reset (messages, updates, faults, limits, chat settings); ``emulator_bot`` is an initialized
python-telegram-bot ``Bot`` on it. tests/conftest.py registers this module for the suite
(``pytest_plugins = ["tests.emulator_fixtures"]``), so tests just ask for the fixtures by name.
``emulator.base_url`` is python-telegram-bot's ``base_url``; ``emulator.state`` is inspectable in-process;
``emulator.say(...)`` / ``emulator.press(...)`` play the user; ``emulator.control_url`` is the control API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from telegram import Bot

from bridge.telegram.emulator import TEST_TOKEN, EmulatorServer

__all__ = ["TEST_TOKEN", "emulator", "emulator_bot", "emulator_server"]


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """The session's emulator, on a free loopback port."""
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> EmulatorServer:
    """The emulator with a clean state for this test."""
    emulator_server.state.reset()
    return emulator_server


@pytest_asyncio.fixture
async def emulator_bot(emulator: EmulatorServer) -> AsyncIterator[Bot]:
    """An initialized python-telegram-bot ``Bot`` pointed at the emulator with ``TEST_TOKEN``."""
    async with Bot(TEST_TOKEN, base_url=emulator.base_url, base_file_url=emulator.base_file_url) as bot:
        yield bot
