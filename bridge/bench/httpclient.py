"""KeepAliveClient: the bench's own HTTP/1.1 client, for requests whose cost would otherwise show in a figure.

A client must cost little next to the server it measures: httpx spends about 3 ms of CPU per request on this
kind of machine (about 6 ms a POST under load), which at 200 requests/s on 2 cores set the http scenario's
latencies, and in the channel scenario was a third of a 20 ms budget. This client writes one request on a
keep-alive connection and reads the status line, the headers and a body sized by Content-Length or chunked: about
0.2 ms per request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class KeepAliveClient:
    """Requests over keep-alive HTTP/1.1 connections to one server, each carrying one request at a time (k6's VUs)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._host_header = f"Host: {host}:{port}\r\n"

    async def get(self, path: str) -> int:
        """The status code; raises OSError or asyncio.IncompleteReadError when the server fails or hangs up."""
        status, _ = await self.request("GET", path)
        return status

    async def post_json(self, path: str, payload: Any) -> Any:
        """POST ``payload`` as JSON and return the decoded answer; raises RuntimeError unless the status is 2xx."""
        status, body = await self.request("POST", path, json.dumps(payload).encode(), "application/json")
        if not 200 <= status < 300:
            raise RuntimeError(f"POST {path}: HTTP {status}: {body[:500].decode(errors='replace')}")
        return json.loads(body)

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str | None = None
    ) -> tuple[int, bytes]:
        """(status code, body); raises OSError or asyncio.IncompleteReadError when the server fails or hangs up."""
        head = f"{method} {path} HTTP/1.1\r\n{self._host_header}"
        if body or method not in ("GET", "HEAD"):
            head += f"Content-Length: {len(body)}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        return await self._exchange(head.encode() + b"\r\n" + body)

    async def _exchange(self, message: bytes) -> tuple[int, bytes]:
        reused = bool(self._idle)
        reader, writer = self._idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(message)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as error:
                if reused and not error.partial:  # the server closed an idle connection: as any client, retry
                    writer.close()
                    return await self._exchange(message)
                raise
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip().lower()
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                chunks = []
                while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    chunks.append((await reader.readexactly(size + 2))[:-2])
                await reader.readuntil(b"\r\n")
                body = b"".join(chunks)
            else:
                body = b""
        except BaseException:
            writer.close()
            raise
        if headers.get("connection") == "close":
            writer.close()
        else:
            self._idle.append((reader, writer))
        return status, body

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def __aenter__(self) -> KeepAliveClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
