"""Wake-ups from the bridge to channel sessions: one UDP datagram on the loopback per message stored for a session
or permission decided.

The database stays the truth: a session polls it every POLL_SECONDS whatever happens, so a lost datagram (or a
bridge on another machine) only costs latency. A datagram costs the bridge ~20 us per session and needs no
Redis; measured, a poked session has the message within a few milliseconds instead of half a poll period. A
datagram carries one byte and nothing is taken from it: what the session sends on is read from the database, so
another process on the machine that pokes a session can cause a read, never a message or a verdict.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
POLL_SECONDS = 0.25
"""The fallback poll of a session, when no wake-up comes."""


def ring(ports: Iterable[int]) -> None:
    """Poke every session listening on ``ports``. Never raises: a wake-up is a hint."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for port in ports:
            try:
                sock.sendto(b"!", (HOST, port))
            except OSError as error:
                logger.debug("could not wake the channel session on port %s: %s", port, error)


class Bell(asyncio.DatagramProtocol):
    """The session's side: ``await bell.wait(timeout)`` returns when poked or after ``timeout`` seconds."""

    def __init__(self) -> None:
        self._rung = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(HOST, 0))
        self.port = self._transport.get_extra_info("sockname")[1]
        return self.port

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._rung.set()

    def poke(self) -> None:
        """Wake the waiter from inside this process (a permission request, a closing session)."""
        self._rung.set()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._rung.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._rung.clear()
        return True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
