"""Websocket and channel-worker routes."""

from __future__ import annotations

from channels.routing import ChannelNameRouter

websocket_routes: list = []
channel_routes = ChannelNameRouter({})
