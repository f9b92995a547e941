"""Telegram's MarkdownV2 parse mode, ported from tdlib's ``parse_markdown_v2``.

The port keeps tdlib's control flow (and its quirks: a ``\\`` before any ASCII character escapes it, ``**``
is an empty bold that disappears, a link whose URL Telegram rejects silently becomes plain text) so that the
emulator accepts and rejects exactly what Telegram does. Runs of ordinary characters are copied with one
regular-expression jump, which keeps parsing linear and fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .base import Entity, EntityParseError, ParsedText, byte_offset, checked_link, sort_entities, utf16_len

SPACE = " \t\r\n\0\v"  # tdlib's is_space; "\0" is also what it reads past the end of the text
PAD = "\0\0\0"  # lets the port look ahead like tdlib reads a NUL-terminated string

_V2_SPECIAL = re.compile(r"[\\_*\[\]()~`>#+\-=|{}.!\n]")
_V2_CODE_SPECIAL = re.compile(r"[\\`]")  # inside code and pre only ` and \ are special
_CODE_KINDS = frozenset({"Code", "Pre", "PreCode"})
_CUSTOM_EMOJI_URL = re.compile(r"^tg://emoji\?id=([1-9][0-9]{0,18})$")


@dataclass(slots=True)
class _Open:
    kind: str
    argument: str
    offset: int  # UTF-16 offset in the output
    source_index: int  # character index in the input, for error messages
    output_index: int  # character index in the output, for a [link] without a URL


def _reserved(char: str) -> EntityParseError:
    return EntityParseError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")


def _unclosed(source: str, entity: _Open) -> EntityParseError:
    at = byte_offset(source, entity.source_index)
    return EntityParseError(f"Can't find end of {entity.kind} entity at byte offset {at}")


def pre_start(s: str, i: int, n: int) -> tuple[str, str, int]:
    """After an opening ```: the kind (Pre or PreCode), the language, and the index of the last consumed char."""
    kind, language = "Pre", ""
    end = i
    while s[end] not in SPACE and s[end] != "`":
        end += 1
    if i != end and end < n and s[end] != "`":
        kind, language, i = "PreCode", s[i:end], end
    if s[i] in "\n\r":  # one line break after the language (or the fence) is not part of the text
        i += 2 if s[i + 1] in "\n\r" and s[i] != s[i + 1] else 1
    return kind, language, i - 1


def _closes(kind: str, c: str, s: str, i: int) -> bool:
    """Whether reserved character ``c`` at ``i`` ends the innermost open entity of ``kind``."""
    if kind == "Bold":
        return c == "*"
    if kind == "Italic":
        return c == "_" and s[i + 1] != "_"
    if kind == "Underline":
        return c == "_" and s[i + 1] == "_"
    if kind == "Code":
        return c == "`"
    if kind in ("Pre", "PreCode"):
        return c == "`" and s[i + 1] == "`" and s[i + 2] == "`"
    if kind in ("TextUrl", "CustomEmoji"):
        return c == "]"
    if kind == "Strikethrough":
        return c == "~"
    if kind == "Spoiler":
        return c == "|" and s[i + 1] == "|"
    return False  # BlockQuote ends only at a line that does not start with '>'


def _read_url(s: str, i: int, n: int) -> tuple[str, int]:
    """Read a (url) body from ``i`` up to ``)``, honouring escapes; returns the URL and the index of ``)``."""
    parts: list[str] = []
    while i < n and s[i] != ")":
        if s[i] == "\\" and "\0" < s[i + 1] <= "~":
            parts.append(s[i + 1])
            i += 2
        else:
            parts.append(s[i])
            i += 1
    return "".join(parts), i


def parse_markdown_v2(source: str) -> ParsedText:
    """Parse MarkdownV2; raises EntityParseError with Telegram's message on text Telegram rejects."""
    s, n = source + PAD, len(source)
    out: list[str] = []
    out_len = u16 = 0
    entities: list[Entity] = []
    stack: list[_Open] = []
    have_blockquote = False
    can_start_blockquote = True
    i = 0
    while i < n:
        pattern = _V2_CODE_SPECIAL if stack and stack[-1].kind in _CODE_KINDS else _V2_SPECIAL
        match = pattern.search(s, i, n)
        j = match.start() if match else n
        if j > i:
            chunk = s[i:j]
            out.append(chunk)
            out_len += len(chunk)
            u16 += utf16_len(chunk)
            if chunk.strip("\r"):
                can_start_blockquote = False
            i = j
            if i >= n:
                break
        c = s[i]
        if c == "\\":
            escaped = s[i + 1]
            if "\0" < escaped <= "~":  # any ASCII character may be escaped
                out.append(escaped)
                if escaped != "\r":
                    can_start_blockquote = escaped == "\n"
                i += 2
            else:  # a lone backslash is an ordinary character
                out.append(c)
                can_start_blockquote = False
                i += 1
            out_len += 1
            u16 += 1
            continue

        top = stack[-1] if stack else None
        if top is None:
            is_end = False
        elif have_blockquote and c == "\n" and (i + 1 == n or s[i + 1] != ">"):
            is_end = True
        else:
            is_end = _closes(top.kind, c, s, i)

        if top is None or not is_end:
            kind, argument, start = "", "", i
            if c == "_":
                kind = "Italic"
                if s[i + 1] == "_":
                    kind, i = "Underline", i + 1
            elif c == "*":
                kind = "Bold"
            elif c == "~":
                kind = "Strikethrough"
            elif c == "|":
                if s[i + 1] != "|":
                    raise _reserved(c)
                kind, i = "Spoiler", i + 1
            elif c == "[":
                kind = "TextUrl"
            elif c == "`":
                if s[i + 1] == "`" and s[i + 2] == "`":
                    kind, argument, i = pre_start(s, i + 3, n)
                else:
                    kind = "Code"
            elif c == "!":
                if s[i + 1] != "[":
                    raise _reserved(c)
                kind, i = "CustomEmoji", i + 1
            elif c == "\n":
                out.append(c)
                out_len += 1
                u16 += 1
                can_start_blockquote = True
            elif c == ">" and can_start_blockquote:
                if not have_blockquote:
                    kind, have_blockquote = "BlockQuote", True
            else:
                raise _reserved(c)
            if kind:
                stack.append(_Open(kind, argument, u16, start, out_len))
            i += 1
            continue

        kind = top.kind
        if c == "\n" and kind != "BlockQuote":
            # "||" right before the end of a quoted line makes the quote expandable
            ends_spoiler_line = top.source_index == i - 2 or (
                top.source_index == i - 3 and out_len > 0 and out[-1].endswith("\r")
            )
            if kind != "Spoiler" or not ends_spoiler_line:
                raise _unclosed(source, top)
            stack.pop()
            top = stack[-1]
            if top.kind != "BlockQuote":
                raise _unclosed(source, top)
            kind = "ExpandableBlockQuote"
        argument = top.argument
        skip = u16 == top.offset
        if kind in ("Underline", "Spoiler"):
            i += 1
        elif kind in ("Pre", "PreCode"):
            i += 2
        elif kind == "TextUrl":
            if s[i + 1] != "(":
                url = "".join(out)[top.output_index :]
            else:
                url_begin = i + 2
                url, i = _read_url(s, url_begin, n)
                if i >= n:
                    raise EntityParseError(
                        f"Can't find end of a URL at byte offset {byte_offset(source, url_begin)}"
                    )
            link = checked_link(url)
            if link is None:
                skip = True
            else:
                argument = link
        elif kind == "CustomEmoji":
            if s[i + 1] != "(":
                raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
            url_begin = i + 2
            url, i = _read_url(s, url_begin, n)
            if i >= n:
                at = byte_offset(source, url_begin)
                raise EntityParseError(f"Can't find end of a custom emoji URL at byte offset {at}")
            emoji = _CUSTOM_EMOJI_URL.match(url)
            if emoji is None:
                raise EntityParseError("Invalid custom emoji identifier specified")
            argument = emoji.group(1)
        elif kind in ("BlockQuote", "ExpandableBlockQuote"):
            have_blockquote = False
            out.append(c)
            out_len += 1
            u16 += 1
            can_start_blockquote = True
            skip = False
        if not skip:
            entities.append(Entity(kind, top.offset, u16 - top.offset, argument))
        stack.pop()
        i += 1

    if have_blockquote:
        kind = "BlockQuote"
        if stack[-1].kind == "Spoiler" and stack[-1].source_index == n - 2:
            stack.pop()
            kind = "ExpandableBlockQuote"
        if stack[-1].kind == "BlockQuote":
            top = stack.pop()
            if u16 != top.offset:
                entities.append(Entity(kind, top.offset, u16 - top.offset))
    if stack:
        raise _unclosed(source, stack[-1])
    sort_entities(entities)
    return ParsedText("".join(out), entities)
