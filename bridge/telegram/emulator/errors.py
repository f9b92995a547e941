"""The Bot API's error answers: ``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``.

Descriptions are Telegram's exact texts, because client libraries (python-telegram-bot among them) and the
bridge decide what an error means from the status code, the description and ``parameters``.
"""

from __future__ import annotations

import math
from typing import Any


class ApiError(Exception):
    """A Bot API method failed; the handler answers with ``status`` and ``envelope()``."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str, parameters: dict[str, Any] | None = None) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}", parameters)


def forbidden(reason: str) -> ApiError:
    return ApiError(403, f"Forbidden: {reason}")


def conflict(reason: str) -> ApiError:
    return ApiError(409, f"Conflict: {reason}")


def too_many_requests(retry_after: float) -> ApiError:
    """429 with Telegram's whole-second ``retry_after`` (never below 1)."""
    seconds = max(1, math.ceil(retry_after))
    return ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})


def not_found() -> ApiError:
    """Telegram's answer to a malformed token or an unknown method."""
    return ApiError(404, "Not Found")


def unauthorized() -> ApiError:
    """Telegram's answer to a well-formed token it does not know."""
    return ApiError(401, "Unauthorized")


def server_error(status: int, description: str | None = None) -> ApiError:
    default = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    return ApiError(status, description or default.get(status, f"Error {status}"))


CHAT_NOT_FOUND = "chat not found"
MESSAGE_TEXT_EMPTY = "message text is empty"
MESSAGE_TOO_LONG = "message is too long"
CAPTION_TOO_LONG = "message caption is too long"
BUTTON_DATA_INVALID = "BUTTON_DATA_INVALID"
CONFLICT_OTHER_POLLER = (
    "terminated by other getUpdates request; make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK = (
    "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
