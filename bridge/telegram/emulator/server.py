"""Run the emulator on a free loopback port in a background thread, for tests and benchmarks.

    with EmulatorServer() as emulator:
        bot = Bot(token, base_url=emulator.base_url)   # http://127.0.0.1:PORT/bot
        ...
        emulator.state.last_message(chat_id)            # in-process inspection
        emulator.press(chat_id, message_id, "approve_t1")  # the user presses a button

The server is uvicorn (h11) on its own event loop; startup takes a few tens of milliseconds.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from .app import build_app
from .injection import inject_callback, inject_message
from .state import EmulatorState

STARTUP_TIMEOUT = 10.0


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn (port 0 picks a free port).

    IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it Nagle
    plus delayed ACKs add ~40 ms to every response written in two parts (headers, body).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def make_server(state: EmulatorState, *, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for the emulator app; run it with ``server.run(sockets=[bind_socket(...)])``."""
    config = uvicorn.Config(
        build_app(state),
        log_level=log_level,
        access_log=False,
        lifespan="off",
        http="h11",
        ws="none",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


class EmulatorUrls:
    """The URLs of an emulator listening on ``host``:``port``."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """python-telegram-bot's ``base_url`` (it appends ``<token>/<method>``)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """python-telegram-bot's ``base_file_url``."""
        return f"{self.url}/file/bot"

    @property
    def control_url(self) -> str:
        return f"{self.url}/_emulator"


class EmulatorServer(EmulatorUrls):
    """A running emulator: ``base_url`` for python-telegram-bot, ``control_url`` for the control API."""

    def __init__(self, state: EmulatorState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state if state is not None else EmulatorState()
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorServer:
        """Bind (port 0 picks a free one), serve in a daemon thread, return once accepting connections.

        Raises RuntimeError if the server does not come up within STARTUP_TIMEOUT seconds.
        """
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        self.state.closing = False
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        server = make_server(self.state)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"telegram-emulator-{self.port}", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Telegram emulator did not start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Release held requests, stop the server and wait for its thread."""
        self.state.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # The user's side, in-process (the control API offers the same over HTTP) ---------------------------------

    def say(self, chat_id: int, text: str | None = None, **options: Any) -> dict[str, Any]:
        """The user sends a message (see ``injection.inject_message``)."""
        return inject_message(self.state, chat_id, text, **options)

    def press(self, chat_id: int, message_id: int, data: str, **options: Any) -> dict[str, Any]:
        """The user presses an inline button (see ``injection.inject_callback``)."""
        return inject_callback(self.state, chat_id, message_id, data, **options)
