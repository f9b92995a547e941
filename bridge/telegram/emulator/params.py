"""Bot API request parameters, typed the way Telegram reads them.

Telegram takes parameters from the query string and from a JSON, urlencoded or multipart body; in the latter two
every value is a string and objects (``reply_markup``, ``reply_parameters``...) are JSON-serialized strings,
which is what python-telegram-bot sends. ``Params`` hides the difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, bad_request

_TRUE = frozenset({"true", "1", "yes", "on"})


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


class Params:
    """Read-only typed view of one request's parameters; getters raise ApiError(400) on bad values."""

    __slots__ = ("files", "values")

    def __init__(self, values: dict[str, Any], files: dict[str, UploadedFile] | None = None) -> None:
        self.values = values
        self.files = files or {}

    def __contains__(self, name: str) -> bool:
        return self.values.get(name) not in (None, "")

    def get_str(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None:
            return default
        return value if isinstance(value, str) else json.dumps(value)

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def get_float(self, name: str, default: float | None = None) -> float | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def get_bool(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in _TRUE

    def get_json(self, name: str, error: str | None = None) -> Any:
        """An object parameter, given as JSON or as a JSON-serialized string; None when absent."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(error or f"can't parse {name} JSON object") from None

    def chat_id(self, name: str = "chat_id") -> int:
        """A required chat id; ``@channelusername`` is accepted by Telegram but unknown to the emulator."""
        value = self.values.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None

    def required_int(self, name: str) -> int:
        value = self.get_int(name)
        if value is None:
            raise bad_request(
                f"{name} is empty" if name != "message_id" else "message identifier is not specified"
            )
        return value

    def file(self, name: str) -> UploadedFile | str | None:
        """An InputFile parameter: an uploaded part (directly or via ``attach://``), or a file_id/URL string."""
        if name in self.files:
            return self.files[name]
        value = self.get_str(name)
        if value and value.startswith("attach://"):
            attached = self.files.get(value[len("attach://") :])
            if attached is None:
                raise ApiError(400, f"Bad Request: file {value} not found in the request")
            return attached
        return value or None

    def public(self) -> dict[str, Any]:
        """The parameters as recorded in the call log: uploads replaced by their name and size."""
        if not self.files:
            return self.values
        described = dict(self.values)
        for name, upload in self.files.items():
            described[name] = {"filename": upload.filename, "size": len(upload.data)}
        return described
