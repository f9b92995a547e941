"""Inline keyboards for events, and the callback data their buttons carry.

Callback data has the original system's form `<action>_<ref>`: `approve_<task_id>`, `deny_<task_id>`,
`ack_<task_id>`, `details_<task_id>`, plus `always_<ref>` (allow for this session), `opt<i>_<ref>` (a third or
later approval option, i its position in data.options) and `<name>_<ref>` or `act<i>_<ref>` (the i-th entry of
data.actions).
Every callback_data is ASCII and 1-64 bytes, whatever the event holds.

How a caller uses `token` (approvals):
1. Before sending, generate one with `new_token()` and store it with the approval, together with
   `callback_ref(event, token)`, the ref the buttons will carry (the task_id when it is short and plain ASCII,
   else the token).
2. Send the message with `keyboard_for(event, token)` (through `render(..., token=token)`) and store the
   chat id and message id of the part that carries the keyboard (the last one).
3. On a press, find the approval by the pressed message (chat id + message id), never by the ref alone: the
   client chooses the callback data, the message it cannot. Then `parse_callback_data` and require the ref to
   equal the stored ref; `option_for` names the option chosen.
Without a token, a ref that cannot be the task_id is derived from the event_id (stable, but guessable).
`api_rows` (also `Rendered.markup`) gives a keyboard in the Bot API form that transport.send_message takes.
Nothing here imports Django; python-telegram-bot is imported only by `reply_markup`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.telegram.escape import clean_text, is_web_url

if TYPE_CHECKING:
    from telegram import InlineKeyboardMarkup

    from bridge.events.schema import Event

CALLBACK_MAX_BYTES = 64
APPROVE, DENY, ACK, DETAILS, ALWAYS = "approve", "deny", "ack", "details", "always"
DEFAULT_OPTIONS = ("Approve", "Deny")
MAX_ACTIONS = 20  # Telegram allows 100 buttons; more than this is not a keyboard anyone reads
MAX_BUTTON_TEXT = 48  # options are also listed in full in the message text

# The longest fixed action prefix is "approve_"/"details_" (8 bytes), "act19_" is 6: a ref of 56 always fits.
MAX_REF = CALLBACK_MAX_BYTES - len("details_")
_SAFE_REF = re.compile(rf"[A-Za-z0-9_.:@#/+=-]{{1,{MAX_REF}}}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,32}")
_ACTION = re.compile(r"[A-Za-z0-9-]{1,32}")
_INDEXED = re.compile(r"(opt|act)(\d{1,2})")
_URL_ACTIONS = frozenset({"url", "open_url", "link", "open"})
_OPTION_STYLE = {APPROVE: "✅ ", DENY: "❌ ", DETAILS: "📄 "}  # as the original styled its three buttons
_DETAILS_LABEL = re.compile(r"[^a-z]")
_ACTION_STYLE = {"danger": "⚠️ "}


@dataclass(frozen=True, slots=True)
class Button:
    """One inline button: exactly one of `callback_data` (1-64 bytes) and `url` (http or https) is set."""

    text: str
    callback_data: str | None = None
    url: str | None = None

    def to_api(self) -> dict[str, str]:
        """The Bot API InlineKeyboardButton object."""
        if self.url is not None:
            return {"text": self.text, "url": self.url}
        return {"text": self.text, "callback_data": self.callback_data or ""}


Keyboard = list[list[Button]]


def new_token() -> str:
    """A fresh unguessable ref for an approval's buttons: 12 URL-safe characters (72 random bits)."""
    return secrets.token_urlsafe(9)


def callback_ref(event: Event, token: str | None = None) -> str:
    """The ref every button of `keyboard_for(event, token)` carries.

    The task_id if it matches [A-Za-z0-9_.:@#/+=-]{1,56}; else `token`; else "e" + 16 characters derived from
    the event_id. Raises ValueError when `token` is not 1-32 characters of [A-Za-z0-9_-].
    """
    if token is not None and not _TOKEN.fullmatch(token):
        raise ValueError("token must be 1-32 characters of A-Z, a-z, 0-9, '_' or '-' (see new_token())")
    if event.task_id and _SAFE_REF.fullmatch(event.task_id):
        return event.task_id
    if token is not None:
        return token
    digest = hashlib.sha256(event.event_id.encode("utf-8", "surrogatepass")).digest()
    return "e" + base64.urlsafe_b64encode(digest[:12]).decode()


def parse_callback_data(data: str) -> tuple[str, str]:
    """(action, ref) from `<action>_<ref>` (split at the first underscore; the ref may hold more).

    Raises ValueError when `data` is not of that form (no underscore, empty part, odd action characters).
    """
    action, separator, ref = data.partition("_")
    if not separator or not ref or not _ACTION.fullmatch(action):
        raise ValueError(f"callback data {data[:80]!r} is not of the form <action>_<ref>")
    return action, ref


def approval_options(event: Event) -> list[str]:
    """The options of an approval request as shown: data.options (labels cleaned, blanks named "Option N"),
    or Approve / Deny."""
    options = event.data.get("options") if isinstance(event.data, dict) else None
    if not isinstance(options, list) or not options:
        return list(DEFAULT_OPTIONS)
    labels = [clean_text(o if isinstance(o, str) else str(o)).strip() for o in options[:10]]
    return [label or f"Option {index + 1}" for index, label in enumerate(labels)]


def option_actions(event: Event) -> list[tuple[str, str]]:
    """(action, label) for each approval option, in order. The first two deciding options answer approve and
    deny; an option named "Details" asks for details and decides nothing (as the original's Details button);
    any further option is opt<i>, i its 0-based position."""
    result: list[tuple[str, str]] = []
    deciding = 0
    for index, label in enumerate(approval_options(event)):
        if _DETAILS_LABEL.sub("", label.casefold()) == DETAILS:
            result.append((DETAILS, label))
            continue
        result.append(((APPROVE, DENY)[deciding] if deciding < 2 else f"opt{index}", label))
        deciding += 1
    return result


def option_for(event: Event, action: str) -> str | None:
    """The label of the approval option that `action` stands for, or None (not one of its options)."""
    return next((label for name, label in option_actions(event) if name == action), None)


def keyboard_for(event: Event, token: str | None = None) -> Keyboard:
    """The buttons for `event`, in rows: approval options (+ "Allow for this session" when the request comes
    from the Claude Code hook, i.e. data.metadata.hook_session_id is set) and Details; Acknowledge and Details
    for task_completion; then one button per data.actions entry. Raises ValueError for a malformed `token`."""
    ref = callback_ref(event, token)
    rows: Keyboard = []
    if event.is_approval:
        options = option_actions(event)
        rows.extend(_rows([Button(_label(_styled(a, label)), f"{a}_{ref}") for a, label in options]))
        metadata = event.data.get("metadata") if isinstance(event.data, dict) else None
        if isinstance(metadata, dict) and metadata.get("hook_session_id"):
            rows.append([Button("🔓 Allow for this session", f"{ALWAYS}_{ref}")])
        if all(action != DETAILS for action, _ in options):
            rows.append([Button("📄 Details", f"{DETAILS}_{ref}")])
    elif event.type == "task_completion":
        rows.append([Button("✅ Acknowledge", f"{ACK}_{ref}"), Button("📄 Details", f"{DETAILS}_{ref}")])
    used = {b.callback_data for row in rows for b in row}
    rows.extend(_rows(_action_buttons(event, ref, used)))
    return rows


def api_rows(keyboard: Keyboard | None) -> list[list[dict[str, str]]] | None:
    """`keyboard` as Bot API rows of InlineKeyboardButton objects (what transport.send_message takes);
    None for no buttons, so that an empty keyboard is never sent."""
    if not keyboard:
        return None
    return [[button.to_api() for button in row] for row in keyboard]


def reply_markup(keyboard: Keyboard | None) -> InlineKeyboardMarkup | None:
    """`keyboard` as python-telegram-bot's InlineKeyboardMarkup; None for no buttons."""
    if not keyboard:
        return None
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup

    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(**button.to_api()) for button in row] for row in keyboard]
    )


def _action_buttons(event: Event, ref: str, used: set[str | None]) -> list[Button]:
    actions = event.data.get("actions") if isinstance(event.data, dict) else None
    if not isinstance(actions, list):
        return []
    buttons = []
    for index, entry in enumerate(actions[:MAX_ACTIONS]):
        if not isinstance(entry, dict):
            continue
        name = entry.get("action") if isinstance(entry.get("action"), str) else ""
        text = entry.get("text") if isinstance(entry.get("text"), str) else name
        text = _label(_ACTION_STYLE.get(str(entry.get("style")), "") + (clean_text(text).strip() or name))
        url = entry.get("url") or (entry.get("data") if name in _URL_ACTIONS else None)
        if is_web_url(url):
            buttons.append(Button(text or "Open", url=url))
            continue
        data = f"{name}_{ref}"
        if data in used:
            continue  # the same answer already has a button (an approval's own Approve / Deny)
        if not _ACTION.fullmatch(name) or _INDEXED.fullmatch(name) or len(data) > CALLBACK_MAX_BYTES:
            data = f"act{index}_{ref}"
        used.add(data)
        buttons.append(Button(text or f"Action {index + 1}", data))
    return buttons


def _styled(action: str, label: str) -> str:
    """✅ / ❌ / 📄 before approve / deny / details options, unless the label starts with a symbol of its own."""
    if action not in _OPTION_STYLE or unicodedata.category(label[0]) == "So":
        return label
    return _OPTION_STYLE[action] + label


def _label(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_BUTTON_TEXT else text[: MAX_BUTTON_TEXT - 1] + "…"


def _rows(buttons: list[Button]) -> Keyboard:
    """Two buttons to a row when their labels are short, else one per row."""
    per_row = 2 if all(len(b.text) <= 20 for b in buttons) else 1
    return [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]
