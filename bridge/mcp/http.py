"""The streamable HTTP transport: the SDK's app behind bearer-token auth, served by uvicorn in its own process.

Its own process because daphne implements no ASGI lifespan, which the SDK's session manager needs. Every HTTP
request must carry ``Authorization: Bearer <key>`` with one of MCP_API_KEYS; anything else is answered 401 before
it reaches the SDK. Keys are compared in constant time, each against every configured key.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

MIN_KEY_LENGTH = 16
ASGIApp = Any


def check_keys(keys: Sequence[str]) -> list[str]:
    """The API keys, refused when there are none or one is too short to be a secret."""
    keys = [key.strip() for key in keys if key.strip()]
    if not keys:
        raise ImproperlyConfigured(
            "The HTTP transport needs an API key: set MCP_API_KEYS to one or more comma-separated random tokens, "
            "e.g. MCP_API_KEYS=$(python -c 'import secrets; print(secrets.token_urlsafe(32))'); clients send "
            '"Authorization: Bearer <token>".'
        )
    if any(len(key) < MIN_KEY_LENGTH for key in keys):
        raise ImproperlyConfigured(
            f"MCP_API_KEYS holds a key shorter than {MIN_KEY_LENGTH} characters: use random tokens "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    return keys


class BearerAuth:
    """ASGI middleware: HTTP requests need a bearer token from ``keys``; lifespan events pass through."""

    def __init__(self, app: ASGIApp, keys: Sequence[str]) -> None:
        self.app = app
        self._keys = [key.encode() for key in check_keys(keys)]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            await _unauthorized(send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: dict) -> bool:
        header = next((value for name, value in scope["headers"] if name == b"authorization"), None)
        if header is None:
            return False
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            return False
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(token, key)
        return matched


async def _unauthorized(send: Any) -> None:
    body = json.dumps({"error": "unauthorized", "message": "missing or wrong bearer token"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="cctelegram"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def run(server: Any, *, host: str, port: int, keys: Sequence[str]) -> None:
    """Serve ``server`` (an MCPServer) at http://host:port/mcp until SIGTERM or Ctrl-C."""
    import uvicorn

    app = BearerAuth(server.streamable_http_app(host=host), keys)
    # log_config=None: uvicorn's records go to the root logger (stderr), like every other line of this process.
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", access_log=False, log_config=None)
    logger.info("MCP server on http://%s:%s/mcp (bearer-token auth, %s key(s))", host, port, len(keys))
    uvicorn.Server(config).run()
