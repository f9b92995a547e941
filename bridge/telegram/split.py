"""Splitting an HTML message that is too long for Telegram into numbered parts, each valid on its own.

Telegram refuses a text over 4,096 UTF-16 code units (after entity parsing) instead of cutting it, and the bridge
never cuts silently either: `split_html` cuts at a line break, else at a space, else anywhere (but never inside a
tag, an entity "&amp;", a surrogate pair or an emoji sequence), closes the tags open at the cut and re-opens them
in the next part, so a long <pre> block stays a <pre> block on both sides. Works on the markup this package
builds (escape.escape_html text, simple tags); nothing here imports Django.
"""

from __future__ import annotations

import re
import unicodedata

from bridge.telegram.escape import MAX_TEXT_UTF16, utf16_len, visible_text

# A tag, an entity, or a run of ordinary characters.
_TOKEN = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^>]*>|&(?:#x[0-9A-Fa-f]+|#[0-9]+|[A-Za-z]+);|[^<&]+|&")
_CHAR, _OPEN, _CLOSE = 0, 1, 2
# Characters that belong to the one before them: never cut just before one, or just after a joiner.
_ZWJ = "\u200d"
_JOINED = re.compile("[\u200d\ufe00-\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f\u20e3]")


def number_header(index: int, count: int) -> str:
    """The line that starts part `index` of `count` (1-based): "(2/3)" and a line break."""
    return f"({index}/{count})\n"


def split_html(markup: str, limit: int = MAX_TEXT_UTF16) -> list[str]:
    """`markup` itself in a list when its visible text fits in `limit` UTF-16 units; otherwise numbered parts.

    Contract for each part: it starts with `number_header(k, n)`, its visible text is at most `limit` units, and
    its tags are balanced. Joining the parts' visible texts without their headers gives the original visible
    text, less the one line break or space at each cut (Telegram trims whitespace at a message's end anyway).
    Raises ValueError when `limit` is too small to make progress (under 32).
    """
    if limit < 32:
        raise ValueError(f"limit must be at least 32 UTF-16 units, not {limit}")
    if utf16_len(visible_text(markup)) <= limit:
        return [markup]
    atoms = _Atoms(markup)
    reserve = utf16_len(number_header(9, 9))
    while True:
        bodies = _cut(atoms, limit - reserve)
        needed = utf16_len(number_header(len(bodies), len(bodies)))
        if needed <= reserve:
            return [number_header(k, len(bodies)) + body for k, body in enumerate(bodies, 1)]
        reserve = needed


class _Atoms:
    """The markup as parallel lists: its source pieces, their kinds, visible characters and UTF-16 widths."""

    __slots__ = ("kind", "name", "source", "text", "width")

    def __init__(self, markup: str) -> None:
        self.source: list[str] = []
        self.kind: list[int] = []
        self.name: list[str] = []
        self.text: list[str] = []
        for match in _TOKEN.finditer(markup):
            piece = match.group(0)
            if match.group(2):
                self._add(piece, _CLOSE if match.group(1) else _OPEN, match.group(2).lower(), "")
            elif piece[0] == "&" and len(piece) > 1:
                self._add(piece, _CHAR, "", visible_text(piece))
            else:
                for char in piece:
                    self._add(char, _CHAR, "", char)
        self.width = [2 if c and ord(c[0]) > 0xFFFF else len(c) for c in self.text]

    def _add(self, source: str, kind: int, name: str, text: str) -> None:
        self.source.append(source)
        self.kind.append(kind)
        self.name.append(name)
        self.text.append(text)

    def __len__(self) -> int:
        return len(self.source)


def _cut(atoms: _Atoms, budget: int) -> list[str]:
    """The bodies (without headers) of the parts, each with at most `budget` visible units."""
    bodies: list[str] = []
    stack: list[int] = []  # indexes of the open tags in force at the current position
    start, total = 0, len(atoms)
    while start < total:
        end, skip = _find_end(atoms, start, budget)
        # Tags opened right before the cut belong to the next part; tags closed right after it, to this one.
        keep = end
        while keep > start and atoms.kind[keep - 1] == _OPEN:
            keep -= 1
        prefix = "".join(atoms.source[i] for i in stack)
        for i in range(start, keep):
            if atoms.kind[i] == _OPEN:
                stack.append(i)
            elif atoms.kind[i] == _CLOSE and stack:
                stack.pop()
        closing = "".join(f"</{atoms.name[i]}>" for i in reversed(stack))
        bodies.append(prefix + "".join(atoms.source[start:keep]) + closing)
        stack.extend(range(keep, end))
        start = end + skip
    return bodies


def _find_end(atoms: _Atoms, start: int, budget: int) -> tuple[int, int]:
    """Where the part beginning at `start` ends (exclusive) and how many separator atoms to drop after it."""
    total, width, text = len(atoms), atoms.width, atoms.text
    used, i = 0, start
    line_cut = word_cut = -1
    half = budget // 2
    while i < total and used + width[i] <= budget:
        if used >= half:
            if text[i] == "\n":
                line_cut = i
            elif text[i] == " ":
                word_cut = i
        used += width[i]
        i += 1
    if i >= total:
        return total, 0
    # The first character that does not fit may itself be the best place to cut.
    for candidate, separator in ((i, "\n"), (line_cut, "\n"), (i, " "), (word_cut, " ")):
        if candidate >= 0 and text[candidate] == separator:
            return candidate, 1
    end = _grapheme_safe(atoms, start, i)
    while end < total and atoms.kind[end] == _CLOSE:
        end += 1
    return end, 0


def _grapheme_safe(atoms: _Atoms, start: int, end: int) -> int:
    """Move a hard cut back (a few characters at most) so it does not split a character sequence."""
    for _ in range(16):
        if end - 1 <= start:
            break
        after, before = atoms.text[end], atoms.text[end - 1]
        if not (after and before):
            break
        if not (_JOINED.match(after) or before == _ZWJ or unicodedata.combining(after)):
            break
        end -= 1
    return end
