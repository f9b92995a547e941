"""Websocket routes. The bridge worker's control consumer is hosted by its own process (bridge.worker), which
listens on the channel layer itself, so no `runworker` channel routes are needed."""

from __future__ import annotations

websocket_routes: list = []
