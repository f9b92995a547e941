"""Message text as Telegram sees it: parse modes, entities, cleaning, UTF-16 length.

``format_text(text, parse_mode)`` is the whole pipeline the Bot API runs on ``text``/``caption``: parse the
markup (MarkdownV2, HTML, legacy Markdown, or none), then clean and trim (``normalize``). It raises
``EntityParseError`` ("can't parse entities: ..."), ``EmptyTextError`` or ``UnsupportedParseModeError``; the
caller checks the length limit on the result with ``utf16_len``. Pure Python, no Django, linear time.
"""

from __future__ import annotations

from typing import Any

from .base import API_TYPES, Entity, EntityParseError, ParsedText, utf16_len
from .html import parse_html
from .markdown import parse_markdown_v2
from .markdown_legacy import parse_markdown
from .normalize import EmptyTextError, finalize

__all__ = [
    "EmptyTextError",
    "Entity",
    "EntityParseError",
    "ParsedText",
    "UnsupportedParseModeError",
    "format_text",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "parse_text",
    "utf16_len",
]

_KINDS = {api: kind for kind, api in API_TYPES.items() if kind != "PreCode"}


class UnsupportedParseModeError(ValueError):
    """parse_mode is not one of MarkdownV2, Markdown, HTML (any case) or empty."""


def parse_text(text: str, parse_mode: str | None, *, strict_html: bool = True) -> ParsedText:
    """Remove the markup of ``parse_mode`` from ``text``; no cleaning or trimming (see ``format_text``)."""
    mode = (parse_mode or "").lower()
    if not mode:
        return ParsedText(text, [])
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "html":
        return parse_html(text, strict=strict_html)
    if mode == "markdown":
        return parse_markdown(text)
    raise UnsupportedParseModeError(parse_mode)


def entities_from_api(items: list[dict[str, Any]]) -> list[Entity]:
    """Explicit ``entities``/``caption_entities`` from a request; types the emulator does not model are dropped."""
    result = []
    for item in items:
        kind = _KINDS.get(item.get("type", ""))
        if kind is None:
            continue
        argument = str(item.get("url") or item.get("language") or item.get("custom_emoji_id") or "")
        if kind == "Pre" and argument:
            kind = "PreCode"
        result.append(Entity(kind, int(item["offset"]), int(item["length"]), argument))
    return result


def format_text(
    text: str,
    parse_mode: str | None,
    *,
    entities: list[dict[str, Any]] | None = None,
    strict_html: bool = True,
) -> ParsedText:
    """Parse and normalize a message text or caption exactly as far as the Bot API does before sending."""
    parsed = parse_text(text, parse_mode, strict_html=strict_html)
    if entities and not parse_mode:
        parsed = ParsedText(text, entities_from_api(entities))
    return finalize(parsed)
