"""The `data` fields the original system understood, their types, and the check that applies them.

`validate_data` is the one check of an event's data (parse calls it); `EventData` is the typed view (pydantic v2,
extra keys allowed) and the reference for what is valid. pydantic is imported on first use, not at import:
it costs ~200 ms of start-up that the Claude Code hook would pay on every tool call. No Django here.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

if TYPE_CHECKING:
    from pydantic import BaseModel

# The data fields of EVENT_TYPES.md and their types. Markers (strings) stand for types that need pydantic.
_NUMBER, _STR_OR_INT, _OPTIONS, _ACTIONS = "number", "str_or_int", "options", "actions"
_TEXT = (
    "status", "results", "file_path", "directory", "language", "function_name", "class_name", "module_name",
    "code_snippet", "commit_hash", "branch_name", "author", "commit_message", "build_target", "error_message",
    "stack_trace", "approval_prompt", "command", "category", "url", "service_name", "endpoint", "request_id",
)  # fmt: skip
_INTEGERS = ("exit_code", "line_number", "test_count", "tests_passed", "tests_failed", "response_code")
_NUMBERS = (
    "coverage_percentage", "duration_ms", "memory_usage_mb", "cpu_usage_percent", "disk_usage_mb",
    "network_bytes", "current", "total", "percentage", "current_value", "threshold",
)  # fmt: skip
_TEXT_LISTS = ("files_affected", "files_changed", "arguments", "tags")
DATA_FIELDS: dict[str, Any] = {
    **dict.fromkeys(_TEXT, str),
    **dict.fromkeys(_INTEGERS, int),
    **dict.fromkeys(_NUMBERS, _NUMBER),
    **dict.fromkeys(_TEXT_LISTS, list[str]),
    "success": bool,
    "error_code": _STR_OR_INT,
    "user_id": _STR_OR_INT,
    "severity": Literal["low", "medium", "high", "critical"],
    "priority": Literal["low", "normal", "high", "urgent"],
    "options": _OPTIONS,
    "actions": _ACTIONS,
    "metadata": dict[str, Any],
}
OPTIONS_MIN, OPTIONS_MAX = 1, 10


class InvalidData(ValueError):
    """`data` has a known field of the wrong type or value; the message names each field ("data.x: ...")."""


def validate_data(data: dict[str, Any]) -> None:
    """Check the known fields of `data` against EventData; other keys are not looked at.

    Raises InvalidData naming the field(s), e.g. "data.exit_code: expected an integer, got str".
    """
    # Plain type checks settle the common case in ~1 us; pydantic (~10 us) runs only for what they cannot
    # vouch for (actions, or a value they refuse), so its verdict and its messages stay the reference.
    for key, value in data.items():
        check = _QUICK_CHECKS.get(key, _accept)
        if value is not None and (check is None or not check(value)):
            break
    else:
        return
    from pydantic import ValidationError

    try:
        _models()[1].model_validate(data)
    except ValidationError as exc:
        raise InvalidData("; ".join(_describe(err) for err in exc.errors()[:5])) from None


def _accept(value: Any) -> bool:
    return True


def _quick_check(kind: Any) -> Callable[[Any], bool] | None:
    """A plain check that is never more lenient than the pydantic field; None when there is none."""
    if kind in (str, int, bool):
        return lambda v: type(v) is kind
    if kind == _NUMBER:
        return lambda v: type(v) is int or type(v) is float
    if kind == _STR_OR_INT:
        return lambda v: type(v) is str or type(v) is int
    if kind == list[str]:
        return lambda v: type(v) is list and all(type(x) is str for x in v)
    if kind == _OPTIONS:
        return lambda v: (
            type(v) is list and OPTIONS_MIN <= len(v) <= OPTIONS_MAX and all(type(x) is str for x in v)
        )
    if kind == dict[str, Any]:
        return lambda v: type(v) is dict and all(type(k) is str for k in v)
    if get_origin(kind) is Literal:
        allowed = frozenset(get_args(kind))
        return lambda v: type(v) is str and v in allowed
    return None


_QUICK_CHECKS = {name: _quick_check(kind) for name, kind in DATA_FIELDS.items()}


_EXPECTED = {
    "int_type": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "float_type": "a number",
    "number_type": "a number",
    "str_or_int_type": "a string or an integer",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _describe(err: Any) -> str:
    """One pydantic error as "data.actions[0].style: expected ..., got str"."""
    path = "data"
    for part in err["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    kind, ctx = err["type"], err.get("ctx") or {}
    got = type(err["input"]).__name__
    if kind in _EXPECTED:
        return f"{path}: expected {_EXPECTED[kind]}, got {got}"
    if kind == "literal_error":
        return f"{path}: expected {ctx['expected']}, got {reprlib.repr(err['input'])}"
    if kind in ("too_short", "too_long"):
        return f"{path}: expected {OPTIONS_MIN} to {OPTIONS_MAX} items, got {ctx.get('actual_length')}"
    if kind == "missing":
        return f"{path}: required"
    return f"{path}: {err['msg'][:1].lower()}{err['msg'][1:]}"


_MODELS: tuple[type[BaseModel], type[BaseModel]] | None = None


def _models() -> tuple[type[BaseModel], type[BaseModel]]:
    """(Action, EventData), built on first use so importing this module does not import pydantic."""
    global _MODELS
    if _MODELS is None:
        _MODELS = _build_models()
    return _MODELS


def _build_models() -> tuple[type[BaseModel], type[BaseModel]]:
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field, PlainValidator, create_model
    from pydantic_core import PydanticCustomError

    def number(value: Any) -> int | float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        raise PydanticCustomError("number_type", "expected a number")

    def str_or_int(value: Any) -> str | int:
        if isinstance(value, str | int) and not isinstance(value, bool):
            return value
        raise PydanticCustomError("str_or_int_type", "expected a string or an integer")

    class Action(BaseModel):
        """A button: {text, action, data?, style?}."""

        model_config = ConfigDict(strict=True, extra="allow")
        text: str
        action: str
        data: str | None = None
        style: Literal["primary", "secondary", "danger"] | None = None

    special = {
        _NUMBER: Annotated[int | float, PlainValidator(number)],
        _STR_OR_INT: Annotated[str | int, PlainValidator(str_or_int)],
        _OPTIONS: Annotated[list[str], Field(min_length=OPTIONS_MIN, max_length=OPTIONS_MAX)],
        _ACTIONS: list[Action],
    }
    fields: Any = {
        name: ((special[kind] if isinstance(kind, str) else kind) | None, None)
        for name, kind in DATA_FIELDS.items()
    }
    event_data = create_model(
        "EventData",
        __config__=ConfigDict(strict=True, extra="allow"),
        __doc__="The data fields the original system understood; all optional, other keys kept as extras.",
        __module__=__name__,
        **fields,
    )
    Action.__qualname__ = "Action"
    return Action, event_data


def __getattr__(name: str) -> Any:
    if name == "Action":
        return _models()[0]
    if name == "EventData":
        return _models()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
