"""What Telegram does to a message text after parsing (tdlib's ``fix_formatted_text``), before it checks length.

Control characters become spaces (except ``\\n``), ``\\r`` and a few invisible characters (U+2028..U+202E,
combining U+030A, U+0333, U+033F) are removed, entities holding only whitespace are dropped, trailing spaces and
newlines are trimmed, and leading ones too up to the first entity. A text left without a visible character is
"empty": Telegram answers "message text is empty" even though the request had text.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from .base import Entity, ParsedText, utf16_len

_NEEDS_CLEANING = re.compile(r"[\x00-\x09\x0b-\x1f\u2028-\u202e\u030a\u0333\u033f]")
_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f]")
_REMOVED = re.compile(r"[\r\u2028-\u202e\u030a\u0333\u033f]")
_BLANK = " \n"


class EmptyTextError(ValueError):
    """Nothing visible is left of the text."""


def _index_of(text: str) -> list[int] | None:
    """Map UTF-16 offsets to string indices; None when they coincide (no characters beyond U+FFFF)."""
    if utf16_len(text) == len(text):
        return None
    mapping: list[int] = []
    for index, char in enumerate(text):
        mapping.append(index)
        if ord(char) > 0xFFFF:
            mapping.append(index)
    mapping.append(len(text))
    return mapping


def _clean(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Replace control characters by spaces and drop removed characters, shifting entities to match."""
    text = _CONTROL.sub(" ", text)
    removed: list[int] = []  # UTF-16 offsets of removed characters (all of them are single code units)
    previous, u16 = 0, 0
    for match in _REMOVED.finditer(text):
        u16 += utf16_len(text[previous : match.start()])
        removed.append(u16)
        u16 += 1
        previous = match.end()
    if not removed:
        return text, entities
    shifted = []
    for entity in entities:
        start = entity.offset - bisect_left(removed, entity.offset)
        end = entity.offset + entity.length - bisect_left(removed, entity.offset + entity.length)
        if end > start:
            shifted.append(Entity(entity.kind, start, end - start, entity.argument))
    return _REMOVED.sub("", text), shifted


def finalize(parsed: ParsedText) -> ParsedText:
    """Clean and trim ``parsed`` like Telegram; raises EmptyTextError when no visible character is left."""
    text, entities = parsed.text, parsed.entities
    if _NEEDS_CLEANING.search(text):
        text, entities = _clean(text, entities)
    body = text.rstrip(_BLANK)
    if not body:
        raise EmptyTextError("message text is empty")
    if entities:
        mapping = _index_of(text)

        def index(u16: int) -> int:
            return u16 if mapping is None else mapping[u16]

        entities = [e for e in entities if text[index(e.offset) : index(e.offset + e.length)].strip(_BLANK)]
        end = utf16_len(body)
        for entity in entities:
            if entity.offset + entity.length > end:
                entity.length = end - entity.offset
    # leading blanks are ASCII, so their count is the same in characters and UTF-16 units
    lead = len(body) - len(body.lstrip(_BLANK))
    if entities:
        lead = min(lead, min(e.offset for e in entities))
    if lead:
        body = body[lead:]
        for entity in entities:
            entity.offset -= lead
    return ParsedText(body, entities)
