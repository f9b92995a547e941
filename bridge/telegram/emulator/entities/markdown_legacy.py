"""Telegram's legacy Markdown parse mode, ported from tdlib's ``parse_markdown``.

``*bold*``, ``_italic_``, `` `code` ``, ```` ```pre``` ```` and ``[text](url)``; no nesting, no underline or
spoiler, and only ``_ * ` [`` can be escaped. An entity that never ends is an error; anything else is text.
"""

from __future__ import annotations

import re

from .base import Entity, EntityParseError, ParsedText, byte_offset, checked_link, sort_entities, utf16_len
from .markdown import PAD, pre_start

_SPECIAL = re.compile(r"[\\_*`\[]")


def parse_markdown(source: str) -> ParsedText:
    """Parse legacy Markdown (``*bold*``, ``_italic_``, `` `code` ``, ``[text](url)``, pre); no nesting."""
    s, n = source + PAD, len(source)
    out: list[str] = []
    u16 = 0
    entities: list[Entity] = []
    i = 0
    while i < n:
        match = _SPECIAL.search(s, i, n)
        j = match.start() if match else n
        if j > i:
            chunk = s[i:j]
            out.append(chunk)
            u16 += utf16_len(chunk)
            i = j
            if i >= n:
                break
        c = s[i]
        if c == "\\":
            if s[i + 1] in "_*`[":
                out.append(s[i + 1])
                i += 2
            else:
                out.append(c)
                i += 1
            u16 += 1
            continue

        begin = i
        end_char = "]" if c == "[" else c
        is_pre, language, kind = False, "", ""
        i += 1
        if c == "`" and s[i] == "`" and s[i + 1] == "`":
            is_pre = True
            kind, language, i = pre_start(s, i + 2, n)
            i += 1
        end = s.find("```", i) if is_pre else s.find(end_char, i, n)
        if end == -1 or end >= n:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {byte_offset(source, begin)}"
            )
        content = s[i:end]
        out.append(content)
        entity_offset = u16
        u16 += utf16_len(content)
        i = end
        if u16 != entity_offset:
            length = u16 - entity_offset
            if c == "_":
                entities.append(Entity("Italic", entity_offset, length))
            elif c == "*":
                entities.append(Entity("Bold", entity_offset, length))
            elif c == "[":
                if s[i + 1] != "(":
                    url = s[begin + 1 : i]
                else:
                    close = s.find(")", i + 2, n)
                    close = n if close == -1 else close
                    url, i = s[i + 2 : close], close
                link = checked_link(url)
                if link is not None:
                    entities.append(Entity("TextUrl", entity_offset, length, link))
            elif is_pre:
                entities.append(Entity(kind, entity_offset, length, language))
            else:
                entities.append(Entity("Code", entity_offset, length))
        if is_pre:
            i += 2
        i += 1
    sort_entities(entities)
    return ParsedText("".join(out), entities)
