"""JSON for the hook without the json package: CPython's own C codec (`_json`), used directly.

`import json` costs ~9 ms here, about a quarter of the hook's whole run: json.decoder and json.encoder compile
regular expressions at import, pulling in re and enum. The C scanner and encoder that json itself uses for
speed need neither. `loads` and `dumps` behave as json.loads and json.dumps (strict strings, NaN/Infinity
accepted) for the documents the hook reads and writes; where `_json` is missing (not CPython), they are the json
package's own. The C scanner imports json.decoder only to raise its error, so a bad document still costs the
import: that path is rare.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see payload.py
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
_WHITESPACE = " \t\n\r"


class _ScanContext:
    """The attributes the C scanner reads from its context (a json.JSONDecoder, normally)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_scan = _json.make_scanner(_ScanContext()) if _json is not None else None
_encoders: dict[tuple[str, str, bool], Any] = {}


def loads(raw: bytes | str) -> Any:
    """The JSON value in `raw` (UTF-8 when bytes). Raises ValueError (incl. UnicodeDecodeError) when it is not
    one JSON document, RecursionError when it is nested too deep."""
    text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    if _scan is None:  # pragma: no cover
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as stop:
        raise ValueError(f"not JSON: nothing to decode at character {stop.value}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"not JSON: extra data at character {end}")
    return value


def dumps(value: Any, *, separators: tuple[str, str] = (", ", ": "), ensure_ascii: bool = True) -> str:
    """`value` as json.dumps(value, separators=..., ensure_ascii=...) writes it. Raises TypeError for a value
    JSON cannot hold, RecursionError for a cycle (there is no cycle check: the hook encodes trees it built)."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(value, separators=separators, ensure_ascii=ensure_ascii)
    key = (*separators, ensure_ascii)
    encoder = _encoders.get(key)
    if encoder is None:
        strings = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
        # (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys, allow_nan)
        encoder = _json.make_encoder(
            None, _not_serializable, strings, None, key[1], key[0], False, False, True
        )
        _encoders[key] = encoder
    return "".join(encoder(value, 0))
