"""A minimal keep-alive HTTP/1.1 client for the Bot API, as python-telegram-bot's HTTP layer (``WireRequest``).

Why not httpx: against the emulator, python-telegram-bot over httpx spends ~1.3 ms of CPU per send, most of it in
the HTTP client's layers (connection pool bookkeeping that probes every idle connection per request, request and
response models, event hooks), against ~0.09 ms in python-telegram-bot's own (building the call, reading the
answer). The sender's calls are small JSON POSTs to one host, so this client does exactly that on asyncio streams:
a few pooled connections, Content-Length or chunked answers, the same connect / write / read / pool timeouts.
``WireRequest`` puts it under python-telegram-bot's Bot; uploads and downloads go to httpx, as do long polls
(the Bot's separate getUpdates request) and everything behind a proxy.

Errors are two: WireTimeout (a phase ran past its timeout; the request may have reached the server) and WireError
(the connection failed), raised to python-telegram-bot as TimedOut and WireNetworkError. Neither message contains
the request path, and so the bot token.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from urllib.parse import urlsplit

from telegram import error as tg_error
from telegram.request import BaseRequest, RequestData

# An idle connection older than this is closed rather than reused: servers drop idle keep-alive connections
# (uvicorn after 5 s), and a request written into one being closed would have to be retried.
IDLE_SECONDS = 4.0
_HEAD_LIMIT = 64 * 1024


class WireError(Exception):
    """The connection failed: refused, reset, closed mid-answer, or an answer that is not HTTP/1.1."""


class WireTimeout(WireError):
    """Connecting, writing, reading or waiting for a free connection took longer than allowed."""


class WireNetworkError(tg_error.NetworkError):
    """A WireError as python-telegram-bot sees it: the connection failed (not an answer of the server's)."""


class _Stale(Exception):
    """A reused connection was closed by the server before it answered: the request was not processed."""


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self, now: float) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof()) and now - self.idle_since < IDLE_SECONDS

    def close(self) -> None:
        self.writer.close()


def supported(base_url: str) -> bool:
    """Whether this client can reach ``base_url``: plain http or https, with no proxy configured for it."""
    scheme = urlsplit(base_url).scheme
    return scheme in ("http", "https") and scheme not in urllib.request.getproxies()


class KeepAlivePool:
    """Up to ``size`` keep-alive connections to the host of ``base_url``; ``post_json`` sends one request."""

    def __init__(
        self,
        base_url: str,
        *,
        size: int,
        connect_timeout: float,
        read_timeout: float,
        write_timeout: float,
        pool_timeout: float,
        user_agent: str = "cctelegram",
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = _tls_context() if parts.scheme == "https" else None
        self.prefix = parts.path
        default_port = self.port == (443 if self.tls else 80)
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        self._head = (
            f"Host: {host_header}\r\nUser-Agent: {user_agent}\r\nAccept: application/json\r\n"
            "Content-Type: application/json\r\nConnection: keep-alive\r\n"
        ).encode("latin-1")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.pool_timeout = pool_timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Connection] = []
        self._closed = False

    async def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` (JSON) to the base URL's path + ``path``; (status, payload). Raises WireError."""
        request = b"".join(
            (
                b"POST ",
                (self.prefix + path).encode("utf-8"),
                b" HTTP/1.1\r\n",
                self._head,
                b"Content-Length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise WireTimeout("no free connection to the Bot API within the pool timeout") from None
        else:
            await self._slots.acquire()  # free: no wait to bound
        try:
            while True:
                connection = self._take()
                if connection is None:
                    connection = await self._connect()
                try:
                    status, payload, keep = await self._exchange(connection, request)
                except _Stale:
                    connection.close()
                    continue  # never processed: the same request on another connection
                except BaseException:
                    connection.close()
                    raise
                if keep and not self._closed:
                    connection.idle_since = time.monotonic()
                    self._idle.append(connection)
                else:
                    connection.close()
                return status, payload
        finally:
            self._slots.release()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> _Connection | None:
        """The most recently used idle connection still fit for a request (the others are closed)."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable(now):
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.tls, limit=_HEAD_LIMIT
                )
        except TimeoutError:
            raise WireTimeout(f"connecting to {self.host}:{self.port} timed out") from None
        except (OSError, ssl.SSLError) as error:
            raise WireError(f"cannot connect to {self.host}:{self.port}: {error}") from None
        return _Connection(reader, writer)

    async def _exchange(self, connection: _Connection, request: bytes) -> tuple[int, bytes, bool]:
        """Write the request and read the answer: (status, body, whether the connection can be reused)."""
        answered = False
        try:
            connection.writer.write(request)
            async with asyncio.timeout(self.write_timeout):
                await connection.writer.drain()
            async with asyncio.timeout(self.read_timeout):
                head = await connection.reader.readuntil(b"\r\n\r\n")
                answered = True
                status, length, chunked, keep = _parse_head(head)
                if status in (204, 304):
                    body = b""  # no body, whatever the headers say
                elif chunked:
                    body = await _read_chunked(connection.reader)
                elif length is not None:
                    body = await connection.reader.readexactly(length)
                else:
                    body, keep = await connection.reader.read(), False
        except TimeoutError:
            raise WireTimeout("the Bot API did not answer within the timeout") from None
        except asyncio.IncompleteReadError as error:
            if not answered and not error.partial and connection.idle_since:
                raise _Stale from None
            raise WireError("the Bot API closed the connection mid-answer") from None
        except (ConnectionError, OSError, ssl.SSLError) as error:
            if not answered and connection.idle_since:
                raise _Stale from None
            raise WireError(f"connection to the Bot API failed: {type(error).__name__}: {error}") from None
        except (asyncio.LimitOverrunError, ValueError) as error:
            raise WireError(f"not an HTTP/1.1 answer: {error}") from None
        return status, body, keep


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """(status, Content-Length or None, chunked, keep-alive) from a response head; ValueError if malformed."""
    lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    if not version.startswith("HTTP/1."):
        raise ValueError(f"status line {lines[0][:60]!r}")
    length: int | None = None
    chunked = False
    keep = version == "HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            keep = value.strip().lower() != "close"
    return int(status), length, chunked, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        chunks.append((await reader.readexactly(size + 2))[:-2])


def _tls_context() -> ssl.SSLContext:
    """The CA bundle httpx would use (certifi), so both clients trust the same authorities."""
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class WireRequest(BaseRequest):
    """python-telegram-bot's requests on a KeepAlivePool for ``base_url`` (the Bot's, before the token): every
    JSON POST to it goes through the pool; a request with files, or for another URL (a file download), goes to
    ``other``. Per-call timeouts are the pool's: the transport passes none of its own."""

    def __init__(self, pool: KeepAlivePool, base_url: str, other: BaseRequest) -> None:
        self._pool = pool
        self._base = base_url
        self._other = other

    @property
    def read_timeout(self) -> float:
        return self._pool.read_timeout

    async def initialize(self) -> None:
        await self._other.initialize()

    async def shutdown(self) -> None:
        await self._pool.close()
        await self._other.shutdown()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        *timeouts: object,
        **named_timeouts: object,
    ) -> tuple[int, bytes]:
        if (
            method != "POST"
            or not url.startswith(self._base)
            or (request_data and request_data.contains_files)
        ):
            return await self._other.do_request(url, method, request_data, *timeouts, **named_timeouts)
        # The values as JSON (python-telegram-bot's json_payload holds each one JSON-encoded in a string, as a
        # form would); ASCII, so that a lone surrogate in a text cannot fail the encoding.
        body = json.dumps(request_data.parameters if request_data else {}, separators=(",", ":")).encode()
        try:
            return await self._pool.post_json(url[len(self._base) :], body)
        except WireTimeout as error:
            raise tg_error.TimedOut(str(error)) from None
        except WireError as error:
            raise WireNetworkError(str(error)) from None
