"""Types shared by the entity parsers: entities, parse errors, UTF-16 lengths, link checking.

Offsets and lengths are in UTF-16 code units, as in the Bot API. Error texts are the ones Telegram's own parser
(tdlib's ``MessageEntity.cpp``) produces; the Bot API prefixes them with ``Bad Request: can't parse entities: ``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# tdlib's internal names appear in error messages ("Can't find end of Bold entity ..."); the Bot API names
# appear in Message.entities.
API_TYPES: dict[str, str] = {
    "Bold": "bold",
    "Italic": "italic",
    "Underline": "underline",
    "Strikethrough": "strikethrough",
    "Spoiler": "spoiler",
    "Code": "code",
    "Pre": "pre",
    "PreCode": "pre",
    "TextUrl": "text_link",
    "CustomEmoji": "custom_emoji",
    "BlockQuote": "blockquote",
    "ExpandableBlockQuote": "expandable_blockquote",
}

# tdlib's sort order for entities starting at the same offset with the same length.
_PRIORITY: dict[str, int] = {
    "BlockQuote": 0,
    "ExpandableBlockQuote": 1,
    "PreCode": 10,
    "Pre": 11,
    "Code": 20,
    "TextUrl": 49,
    "Bold": 90,
    "Italic": 91,
    "Underline": 92,
    "Strikethrough": 93,
    "Spoiler": 94,
    "CustomEmoji": 99,
}


class EntityParseError(ValueError):
    """Text cannot be parsed in its parse mode; ``str(error)`` is Telegram's wording, without the prefix."""


@dataclass(slots=True)
class Entity:
    """One formatting entity; ``kind`` is tdlib's name (``Bold``, ``PreCode``, ``TextUrl``, ...)."""

    kind: str
    offset: int
    length: int
    argument: str = ""

    def to_api(self) -> dict[str, Any]:
        """The Bot API MessageEntity object."""
        result: dict[str, Any] = {"offset": self.offset, "length": self.length, "type": API_TYPES[self.kind]}
        if self.kind == "PreCode":
            result["language"] = self.argument
        elif self.kind == "TextUrl":
            result["url"] = self.argument
        elif self.kind == "CustomEmoji":
            result["custom_emoji_id"] = self.argument
        return result


@dataclass(slots=True)
class ParsedText:
    """Plain text (markup removed) and its entities, sorted as Telegram sorts them."""

    text: str
    entities: list[Entity]

    def api_entities(self) -> list[dict[str, Any]]:
        return [entity.to_api() for entity in self.entities]


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units: what Telegram counts (characters beyond U+FFFF count twice)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def byte_offset(text: str, index: int) -> int:
    """UTF-8 byte offset of character ``index``: Telegram's error messages count bytes."""
    prefix = text[:index]
    return len(prefix) if prefix.isascii() else len(prefix.encode("utf-8", "surrogatepass"))


def sort_entities(entities: list[Entity]) -> None:
    """Sort in place like tdlib: by offset, longer first, then by type priority."""
    entities.sort(key=lambda e: (e.offset, -e.length, _PRIORITY[e.kind]))


_HOST = re.compile(r"^[\w.-]+(?::\d{1,5})?$", re.UNICODE)
_ALLOWED_SCHEMES = frozenset({"http", "https", "tg", "ton", "tonsite"})


def checked_link(url: str) -> str | None:
    """Telegram's normalized form of a link target, or None when Telegram would drop the link.

    An approximation of tdlib's ``LinkManager::get_checked_link``: a missing scheme means ``http://``, an
    empty path becomes ``/``, and only http(s), tg, ton and tonsite links with a plausible host survive. A
    dropped link is not an error: the text stays, without the text_link entity.
    """
    url = url.strip()
    if not url or any(c.isspace() for c in url):
        return None
    scheme, sep, rest = url.partition("://")
    if not sep:
        if url.lower().startswith(("tg:", "ton:")):
            return url
        scheme, rest = "http", url
    scheme = scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        return None
    if scheme in ("tg", "ton"):
        return f"{scheme}://{rest}" if rest else None
    host, slash, path = rest.partition("/")
    host_only = host.split("?", 1)[0].split("#", 1)[0]
    if "@" in host_only:
        host_only = host_only.rsplit("@", 1)[1]
    hostname = host_only.split(":", 1)[0]
    if not _HOST.match(host_only) or ("." not in hostname and hostname != "localhost"):
        return None
    if not slash and host_only == host:
        return f"{scheme}://{host}/"
    return f"{scheme}://{host}{slash}{path}"
