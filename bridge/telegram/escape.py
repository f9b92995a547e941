"""Making agent text safe for Telegram: cleaning, escaping for a parse mode, and measuring what Telegram counts.

Every piece of event text (titles, descriptions, data values, option labels, file names, code, URLs) reaches a
message only through `escape_html` (the bridge's parse mode) after `clean_text`. Escaped text can neither break
Telegram's entity parser ("can't parse entities") nor inject markup: a title "<b>x</b>" shows literally.
`escape_markdown_v2` exists for callers that must use MarkdownV2; the bridge itself sends HTML because HTML needs
three escapes instead of eighteen, and a forgotten one fails loudly in the emulator rather than eating a character.
Nothing here imports Django.
"""

from __future__ import annotations

import html
import re

PARSE_MODE = "HTML"
MAX_TEXT_UTF16 = 4096  # Telegram's limit on a message text after entity parsing, in UTF-16 code units

_TAB_WIDTH = 4
# What Telegram would do anyway (tdlib's clean_input_string), done here so that what we measure is what Telegram
# counts and shows: other C0 controls become spaces; bidi embeddings/overrides and three combining marks vanish.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_VANISHING = re.compile(r"[\u202a-\u202e\u030a\u0333\u033f]")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029]")
_NEEDS_CLEANING = re.compile(r"[\x00-\x1f\u2028-\u202e\u030a\u0333\u033f]")

_HTML_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_HTML_ATTRIBUTE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_MARKDOWN_V2 = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")
_MARKDOWN_V2_CODE = re.compile(r"([`\\])")
_MARKDOWN_V2_URL = re.compile(r"([)\\])")
_TAG = re.compile(r"<[^>]*>")


def clean_text(text: str) -> str:
    """`text` as Telegram will show it, minus what Telegram would strip or mangle.

    Line breaks (CRLF, CR, U+2028, U+2029) become "\\n"; tabs are expanded to 4-column stops (Telegram would turn
    each into one space and flatten indentation); other C0 control characters become spaces; U+202A..U+202E
    (bidi overrides, also a spoofing vector) and U+030A, U+0333, U+033F are removed, as Telegram removes them.
    Idempotent; Telegram's own cleaning leaves the result unchanged.
    """
    if not _NEEDS_CLEANING.search(text):
        return text
    text = _LINE_BREAKS.sub("\n", text)
    if "\t" in text:
        text = text.expandtabs(_TAB_WIDTH)
    return _VANISHING.sub("", _CONTROLS.sub(" ", text))


def escape_html(text: str) -> str:
    """`text` cleaned and escaped for HTML parse mode, outside or inside any tag: shows exactly as given."""
    return clean_text(text).translate(_HTML_TEXT)


def escape_attribute(text: str) -> str:
    """`text` escaped for a double-quoted HTML attribute value (an href)."""
    return clean_text(text).translate(_HTML_ATTRIBUTE)


def escape_markdown_v2(text: str, *, entity: str | None = None) -> str:
    """`text` cleaned and escaped for MarkdownV2.

    `entity` says where the text goes: None (ordinary text: all of _*[]()~`>#+-=|{}.! and backslash are
    escaped), "code" (inside `...` or ```...```: only ` and backslash), or "url" (inside the (...) of a link:
    only ) and backslash). Raises ValueError for another `entity`.
    """
    text = clean_text(text)
    if entity is None:
        return _MARKDOWN_V2.sub(r"\\\1", text)
    if entity in ("code", "pre"):
        return _MARKDOWN_V2_CODE.sub(r"\\\1", text)
    if entity == "url":
        return _MARKDOWN_V2_URL.sub(r"\\\1", text)
    raise ValueError(f"entity must be None, 'code', 'pre' or 'url', not {entity!r}")


def visible_text(markup: str) -> str:
    """The text Telegram shows for HTML `markup` built by this package (tags removed, entities decoded).

    Only meant for our own markup, where every "<" starts a tag and "&" an entity.
    """
    return html.unescape(_TAG.sub("", markup))


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts: characters beyond U+FFFF count twice."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def is_web_url(url: str) -> bool:
    """Whether `url` is an absolute http(s) URL with a dotted host (or localhost), no user info, and no
    whitespace, quotes or control characters: the only URLs turned into links or URL buttons (others are
    shown as text, so nothing can smuggle a javascript: or tg: link past the reader)."""
    if not isinstance(url, str) or len(url) > _MAX_URL or _NOT_IN_URL.search(url):
        return False
    match = _WEB_URL.match(url)
    if match is None:
        return False
    host = match.group(1).lower()
    return host == "localhost" or ("." in host and not host.startswith(".") and not host.endswith("."))


_MAX_URL = 2048
_WEB_URL = re.compile(r"https?://([A-Za-z0-9.\-]+)(?::\d{1,5})?(?:[/?#]|$)", re.IGNORECASE)
_NOT_IN_URL = re.compile(r"[\x00-\x20\x7f-\x9f\u2028-\u202e\"<>\\^`{|}]")
