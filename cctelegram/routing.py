"""Websocket routes. The bridge worker's control consumer is hosted by its own process (bridge.worker), which
listens on the channel layer itself, so no `runworker` channel routes are needed."""

from __future__ import annotations

from django.urls import path

from bridge.consumers import DashboardConsumer
from bridge.dashboard.views import WEBSOCKET_PATH

websocket_routes: list = [
    path(WEBSOCKET_PATH.lstrip("/"), DashboardConsumer.as_asgi()),
]
