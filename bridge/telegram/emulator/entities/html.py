"""Telegram's HTML parse mode, ported from tdlib's ``parse_html``.

Supported tags: b strong i em u ins s strike del tg-spoiler ``span class="tg-spoiler"`` a code pre blockquote
(``expandable``) tg-emoji; entities ``&lt; &gt; &amp; &quot;`` and numeric ones (the ``;`` is optional, as in
tdlib). Unknown tags, stray or mismatched end tags and unclosed tags are errors with Telegram's wording.

One deliberate difference, on by default (``strict=True``): Telegram keeps a bare ``&`` that does not start a
known entity (``a & b``, ``&nbsp;``) as a literal character; the strict emulator rejects it, so that a sender
that forgets to escape ``&`` fails in tests instead of silently turning ``&lt;`` in its data into ``<``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .base import Entity, EntityParseError, ParsedText, byte_offset, checked_link, sort_entities, utf16_len

_SPACE = " \t\r\n\0\v"  # tdlib's is_space
_SPECIAL = re.compile(r"[&<]")
_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji", "span", "pre"}
    | {"code", "blockquote"}
)
_SIMPLE = {
    "b": "Bold",
    "strong": "Bold",
    "i": "Italic",
    "em": "Italic",
    "u": "Underline",
    "ins": "Underline",
    "s": "Strikethrough",
    "strike": "Strikethrough",
    "del": "Strikethrough",
    "tg-spoiler": "Spoiler",
    "span": "Spoiler",  # only <span class="tg-spoiler"> is accepted
}
_NAMED = {"lt": 0x3C, "gt": 0x3E, "amp": 0x26, "quot": 0x22}
_HEX = "0123456789abcdefABCDEF"
_DIGITS = "0123456789"
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.-]*")
_ALPHA = re.compile(r"[A-Za-z]*")


@dataclass(slots=True)
class _Open:
    tag: str
    argument: str
    offset: int  # UTF-16 offset in the output
    output_index: int  # character index in the output, for <a> without href


def _decode_entity(s: str, pos: int) -> tuple[int, int]:
    """Decode the character reference at ``s[pos] == '&'``: (code point, index after it), or (0, pos)."""
    end = pos + 1
    code = 0
    if s[pos + 1] == "#":
        end += 1
        digits, base = _DIGITS, 10
        if s[pos + 2] == "x":
            end += 1
            digits, base = _HEX, 16
        start = end
        while s[end] in digits:
            end += 1
        if end - pos >= 10 or end == start:
            return 0, pos
        code = int(s[start:end], base)
        if code == 0 or code >= 0x10FFFF:
            return 0, pos
    else:
        end = _ALPHA.match(s, end).end()
        code = _NAMED.get(s[pos + 1 : end], 0)
        if not code:
            return 0, pos
    if s[end] == ";":
        end += 1
    return code, end


def _decode_attribute(s: str, i: int, quote: str) -> tuple[str, int]:
    """A quoted attribute value from ``i`` (after the quote) with entities decoded; returns it and the next index."""
    parts: list[str] = []
    while s[i] != quote and s[i] != "\0":
        if s[i] == "&":
            code, end = _decode_entity(s, i)
            if code:
                parts.append(chr(code))
                i = end
                continue
        parts.append(s[i])
        i += 1
    if s[i] == quote:
        i += 1
    return "".join(parts), i


def _start_tag(source: str, s: str, begin: int) -> tuple[_Open, int]:
    """Parse ``<tag attr=...>`` at ``begin``; returns the open tag (offsets unset) and the index of ``>``."""
    at = byte_offset(source, begin)
    i = begin + 1
    while s[i] not in _SPACE and s[i] != ">":
        i += 1
    if s[i] == "\0":
        raise EntityParseError(f"Unclosed start tag at byte offset {at}")
    tag = s[begin + 1 : i].lower()
    if tag not in _TAGS:
        raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {at}')
    argument = ""
    while s[i] != ">":
        while s[i] != "\0" and s[i] in _SPACE:
            i += 1
        if s[i] == ">":
            break
        name_begin = i
        while s[i] not in _SPACE and s[i] not in "=>/\"'":
            i += 1
        name = s[name_begin:i]
        if not name:
            raise EntityParseError(f'Empty attribute name in the tag "{tag}" at byte offset {at}')
        while s[i] != "\0" and s[i] in _SPACE:
            i += 1
        if s[i] != "=":
            if s[i] == "\0":
                raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {at}')
            if tag == "blockquote" and name == "expandable":
                argument = "1"
            continue
        i += 1
        while s[i] != "\0" and s[i] in _SPACE:
            i += 1
        if s[i] == "\0":
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {at}')
        if s[i] not in "'\"":
            token_begin = i
            i = _NAME_TOKEN.match(s, i).end()
            value = s[token_begin:i].lower()
            if s[i] not in _SPACE and s[i] != ">":
                token_at = byte_offset(source, token_begin)
                raise EntityParseError(f"Unexpected end of name token at byte offset {token_at}")
        else:
            value, i = _decode_attribute(s, i + 1, s[i])
        if s[i] == "\0":
            raise EntityParseError(f"Unclosed start tag at byte offset {at}")
        if tag == "a" and name == "href":
            argument = value
        elif tag == "code" and name == "class" and value.startswith("language-"):
            argument = value[9:]
        elif tag == "span" and name == "class" and value.startswith("tg-"):
            argument = value[3:]
        elif tag == "tg-emoji" and name == "emoji-id":
            argument = value
        elif tag == "blockquote" and name == "expandable":
            argument = "1"
    if tag == "span" and argument != "spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
    return _Open(tag, argument, 0, 0), i


def _close(entities: list[Entity], top: _Open, length: int, output: str) -> None:
    """Append the entity for a closed tag (tdlib's end-of-entity switch)."""
    offset, tag = top.offset, top.tag
    if tag in _SIMPLE:
        entities.append(Entity(_SIMPLE[tag], offset, length))
    elif tag == "tg-emoji":
        if not top.argument.isdigit() or int(top.argument) == 0 or int(top.argument) >= 2**63:
            raise EntityParseError("Invalid custom emoji identifier specified")
        entities.append(Entity("CustomEmoji", offset, length, top.argument))
    elif tag == "a":
        link = checked_link(top.argument or output[top.output_index :])
        if link is not None:
            entities.append(Entity("TextUrl", offset, length, link))
    elif tag == "pre":
        last = entities[-1] if entities else None
        if last and last.kind == "Code" and (last.offset, last.length) == (offset, length) and last.argument:
            last.kind = "PreCode"  # <pre><code class="language-x">
        else:
            entities.append(Entity("Pre", offset, length))
    elif tag == "code":
        last = entities[-1] if entities else None
        if last and last.kind == "Pre" and (last.offset, last.length) == (offset, length) and top.argument:
            last.kind, last.argument = "PreCode", top.argument  # <code class="language-x"><pre>
        else:
            entities.append(Entity("Code", offset, length, top.argument))
    else:  # blockquote
        entities.append(Entity("ExpandableBlockQuote" if top.argument else "BlockQuote", offset, length))


def parse_html(source: str, *, strict: bool = True) -> ParsedText:
    """Parse Telegram HTML; raises EntityParseError with Telegram's message on markup Telegram rejects.

    ``strict`` also rejects a bare ``&`` that Telegram would keep as a literal (see the module docstring).
    """
    s, n = source + "\0\0", len(source)
    out: list[str] = []
    out_len = u16 = 0
    entities: list[Entity] = []
    stack: list[_Open] = []
    surrogate = False
    i = 0
    while i < n:
        match = _SPECIAL.search(s, i, n)
        j = match.start() if match else n
        if j > i:
            chunk = s[i:j]
            out.append(chunk)
            out_len += len(chunk)
            u16 += utf16_len(chunk)
            i = j
            if i >= n:
                break
        if s[i] == "&":
            code, end = _decode_entity(s, i)
            if not code and strict:
                raise EntityParseError(
                    f"Unescaped '&' at byte offset {byte_offset(source, i)}: write it as &amp; "
                    "(Telegram would keep it; the strict emulator does not)"
                )
            if code:
                surrogate = surrogate or 0xD800 <= code <= 0xDFFF
                out.append(chr(code))
                u16 += 2 if code > 0xFFFF else 1
                i = end
            else:
                out.append("&")
                u16 += 1
                i += 1
            out_len += 1
            continue

        begin = i
        if s[i + 1] != "/":
            opened, i = _start_tag(source, s, begin)
            opened.offset, opened.output_index = u16, out_len
            stack.append(opened)
            i += 1
            continue

        at = byte_offset(source, begin)
        if not stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {at}")
        i += 1
        while s[i] not in _SPACE and s[i] != ">":
            i += 1
        end_tag = s[begin + 2 : i].lower()
        while s[i] != "\0" and s[i] in _SPACE:
            i += 1
        if s[i] != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {at}")
        top = stack[-1]
        if end_tag and end_tag != top.tag:
            raise EntityParseError(
                f'Unmatched end tag at byte offset {at}, expected "</{top.tag}>", found "</{end_tag}>"'
            )
        if u16 > top.offset:
            _close(entities, top, u16 - top.offset, "".join(out) if top.tag == "a" else "")
        stack.pop()
        i += 1
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    for entity in entities:
        if entity.kind == "Code":
            entity.argument = ""
    if surrogate:
        raise EntityParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, check for unmatched "
            "surrogate code units"
        )
    sort_entities(entities)
    return ParsedText("".join(out), entities)
