"""stdin and stdout as asyncio pipes, for the SDK's stdio transport.

The SDK's default wraps stdin and stdout in anyio files, whose every read, write and flush is a hop to a worker
thread: three a request, a good part of a sub-millisecond call. Here either the event loop reads and writes the
pipes itself (``pipes()``, for the SDK's stdio transport), or one thread reads them blocking and any thread writes
(``blocking_wire()``, for bridge.mcp.frontend, whose reading thread answers the send tools itself). As the SDK does, the wire moves to private descriptors while serving and file descriptors 0 and 1 point
at /dev/null and stderr, so a stray print (or a child process) cannot corrupt the JSON-RPC stream; both are
restored on exit.

Pipes only (what an MCP client gives its server); `pipes()` raises OSError for anything else (a terminal, a
regular file), and the caller falls back to the SDK's own streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

logger = logging.getLogger(__name__)

# A JSON-RPC message is one line; an event may be up to ~1 MB of JSON, escaped: room for that and more.
MAX_LINE = 16 * 1024 * 1024
READ_CHUNK = 64 * 1024
TOO_LONG = (
    json.dumps(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": f"message over {MAX_LINE} bytes"}}
    )
    + "\n"
)


class LineReader:
    """``async for line in reader``: the text lines of the wire, as the SDK's stdio transport reads them."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> LineReader:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", "replace")


class LineWriter:
    """``await write(text)`` then ``await flush()``, as the SDK's stdio transport writes."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


def on_pipes() -> bool:
    """Whether stdin and stdout are both pipes, which ``pipes()`` needs."""
    return all(stat.S_ISFIFO(os.fstat(fd).st_mode) for fd in (0, 1))


class BlockingWire:
    """The wire for a thread of its own (bridge.mcp.frontend): ``lines()`` blocks reading, ``send(text)`` writes
    whole messages from any thread, one at a time.

    Plain descriptors, no buffered file: ``close()`` must not wait for a read in progress (a buffered reader's
    close would, holding the server open until the client writes again after the server failed)."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self._in = fd_in
        self._out = fd_out
        self._lock = threading.Lock()

    def lines(self) -> Iterator[str]:
        """The wire's lines until the client closes it. A line over MAX_LINE is skipped, answered with a JSON-RPC
        error (its id unknown), so that the client is not left waiting."""
        buffer, scanned, skipping = bytearray(), 0, False
        while True:
            end = buffer.find(b"\n", scanned)
            if end < 0:
                scanned = len(buffer)
                if scanned > MAX_LINE:
                    buffer.clear()
                    scanned, skipping = 0, True
                chunk = os.read(self._in, READ_CHUNK)
                if not chunk:
                    if buffer and not skipping:
                        yield buffer.decode("utf-8", "replace")
                    return
                buffer += chunk
                continue
            line = bytes(buffer[: end + 1])
            del buffer[: end + 1]
            scanned = 0
            if skipping or len(line) > MAX_LINE:
                skipping = False
                logger.warning("skipped a message longer than %d bytes", MAX_LINE)
                self.send(TOO_LONG)
                continue
            yield line.decode("utf-8", "replace")

    def send(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        with self._lock:
            while data:
                data = data[os.write(self._out, data) :]

    def close(self) -> None:
        """Close the wire, output first: the client sees it end even while this server's reader still waits."""
        for fd in (self._out, self._in):
            with contextlib.suppress(OSError):
                os.close(fd)


@contextmanager
def blocking_wire() -> Iterator[BlockingWire]:
    """The wire as a BlockingWire. Raises OSError when stdin or stdout is not a pipe."""
    with _taken_over() as (fd_in, fd_out):
        wire = BlockingWire(fd_in, fd_out)
        try:
            yield wire
        finally:
            wire.close()


@asynccontextmanager
async def pipes() -> AsyncIterator[tuple[LineReader, LineWriter]]:
    """The wire as (reader, writer) on the event loop. Raises OSError when stdin or stdout is not a pipe."""
    loop = asyncio.get_running_loop()
    with _taken_over() as (fd_in, fd_out):
        wire_in, wire_out = os.fdopen(fd_in, "rb", buffering=0), os.fdopen(fd_out, "wb", buffering=0)
        transports: list[asyncio.BaseTransport] = []
        try:
            reader = asyncio.StreamReader(limit=MAX_LINE)
            read_transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), wire_in
            )
            transports.append(read_transport)
            write_transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, wire_out
            )
            transports.append(write_transport)
            yield LineReader(reader), LineWriter(asyncio.StreamWriter(write_transport, protocol, None, loop))
        finally:
            for transport in transports:
                transport.close()
            for wire in (wire_in, wire_out)[len(transports) :]:
                wire.close()  # not handed to a transport, which would have closed it


@contextmanager
def _taken_over() -> Iterator[tuple[int, int]]:
    """Private descriptors of the wire (the caller closes them), while 0 reads /dev/null and 1 writes to stderr;
    both restored on exit. Raises OSError when stdin or stdout is not a pipe."""
    if not on_pipes():
        raise OSError("stdin or stdout is not a pipe")
    wire = os.dup(0), os.dup(1)
    saved = [os.dup(0), os.dup(1)]
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    try:
        yield wire
    finally:
        for fd, original in zip((0, 1), saved, strict=True):
            os.dup2(original, fd)
            os.close(original)


def logs_to_stderr() -> None:
    """Point any log handler writing to stdout at stderr, whatever LOGGING says: a line logged before the
    transport takes over the descriptors (while the server is built) would otherwise open the JSON-RPC stream."""
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):  # placeholders have none
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                handler.setStream(sys.stderr)
