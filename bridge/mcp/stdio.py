"""stdin and stdout as asyncio pipes, for the SDK's stdio transport.

The SDK's default wraps stdin and stdout in anyio files, whose every read, write and flush is a hop to a worker
thread: three a request, a good part of a sub-millisecond call. Here the event loop reads and writes the pipes
itself. As the SDK does, the wire moves to private descriptors while serving and file descriptors 0 and 1 point
at /dev/null and stderr, so a stray print (or a child process) cannot corrupt the JSON-RPC stream; both are
restored on exit.

Pipes only (what an MCP client gives its server); `pipes()` raises OSError for anything else (a terminal, a
regular file), and the caller falls back to the SDK's own streams.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# A JSON-RPC message is one line; an event may be up to ~1 MB of JSON, escaped: room for that and more.
MAX_LINE = 16 * 1024 * 1024


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


@asynccontextmanager
async def pipes() -> AsyncIterator[tuple[LineReader, LineWriter]]:
    """The wire as (reader, writer). Raises OSError when stdin or stdout is not a pipe."""
    if not on_pipes():
        raise OSError("stdin or stdout is not a pipe")
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.fdopen(os.dup(0), "rb", buffering=0), os.fdopen(os.dup(1), "wb", buffering=0)
    saved = [os.dup(0), os.dup(1)]
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    transports: list[asyncio.BaseTransport] = []
    try:
        reader = asyncio.StreamReader(limit=MAX_LINE)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), wire_in
        )
        transports.append(read_transport)
        write_transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, wire_out)
        transports.append(write_transport)
        yield LineReader(reader), LineWriter(asyncio.StreamWriter(write_transport, protocol, None, loop))
    finally:
        for transport in transports:
            transport.close()
        for wire in (wire_in, wire_out)[len(transports) :]:
            wire.close()  # not handed to a transport, which would have closed it
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
