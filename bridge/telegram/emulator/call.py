"""One Bot API call being answered, and the checks that several methods share.

Every helper raises ApiError with Telegram's status and description; the caller turns it into the envelope.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .entities import EmptyTextError, EntityParseError, ParsedText, UnsupportedParseModeError, utf16_len
from .entities import format_text as parse_and_normalize
from .entities.base import checked_link
from .errors import BUTTON_DATA_INVALID, MESSAGE_TEXT_EMPTY, bad_request, too_many_requests
from .objects import chat_object, chat_type
from .params import Params
from .state import EmulatorState

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_MARKUP_JSON = "can't parse reply keyboard markup JSON object"


@dataclass(slots=True)
class Call:
    """A request to one Bot API method: who calls (the bot user), what (lower-case method), with what."""

    state: EmulatorState
    bot: dict[str, Any]
    method: str
    params: Params

    def target_chat(self) -> int:
        """The required chat_id, after the configured chat errors (blocked, not found, migrated)."""
        chat_id = self.params.chat_id()
        self.state.check_chat(chat_id)
        return chat_id

    def admit(self, chat_id: int) -> None:
        """Count a send against the flood limits; raises 429 with retry_after when over them."""
        state = self.state
        if self.method not in state.flood.config.methods:
            return
        with state.lock:
            wait = state.flood.admit(chat_id, time.monotonic())
        if wait is not None:
            raise too_many_requests(wait)

    def message_text(self, text: str | None) -> ParsedText:
        """The text parsed in the request's parse_mode, cleaned and length-checked like Telegram's."""
        if not text:
            raise bad_request(MESSAGE_TEXT_EMPTY)
        try:
            return self._parse(text, "entities", TEXT_LIMIT)
        except EmptyTextError:
            raise bad_request(MESSAGE_TEXT_EMPTY) from None

    def caption(self) -> ParsedText | None:
        """The optional caption, parsed like a text (limit 1024); None when absent or blank."""
        caption = self.params.get_str("caption")
        if not caption:
            return None
        try:
            return self._parse(caption, "caption_entities", CAPTION_LIMIT)
        except EmptyTextError:
            return None

    def _parse(self, text: str, entities_param: str, limit: int) -> ParsedText:
        params = self.params
        try:
            parsed = parse_and_normalize(
                text,
                params.get_str("parse_mode"),
                entities=params.get_json(entities_param),
                strict_html=self.state.strict_html,
            )
        except EntityParseError as error:
            raise bad_request(f"can't parse entities: {error}") from None
        except UnsupportedParseModeError:
            raise bad_request("unsupported parse_mode") from None
        if utf16_len(parsed.text) > limit:
            raise bad_request("message is too long" if limit == TEXT_LIMIT else "message caption is too long")
        return parsed

    def reply_markup(self) -> dict[str, Any] | None:
        """The inline keyboard to attach, validated like Telegram; other keyboards are accepted and not kept."""
        markup = self.params.get_json("reply_markup", _MARKUP_JSON)
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request(_MARKUP_JSON)
        if "inline_keyboard" not in markup:
            return None
        return {"inline_keyboard": validate_inline_keyboard(markup["inline_keyboard"])}

    def reply_to(self, chat_id: int) -> dict[str, Any] | None:
        """The replied-to message (reply_parameters or the older reply_to_message_id), without its own reply."""
        params = self.params
        options = params.get_json("reply_parameters")
        if isinstance(options, dict):
            message_id = options.get("message_id")
            allow_missing = bool(options.get("allow_sending_without_reply"))
            chat_id = int(options.get("chat_id") or chat_id)
        else:
            message_id = params.get_int("reply_to_message_id")
            allow_missing = params.get_bool("allow_sending_without_reply")
        if not message_id:
            return None
        record = self.state.get_message(chat_id, int(message_id))
        if record is None:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        reply = dict(record.message)
        reply.pop("reply_to_message", None)
        return reply

    def new_message(self, chat_id: int, message_id: int, **content: Any) -> dict[str, Any]:
        """A Message from the bot: the common fields, then ``content`` (None values left out)."""
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": self.bot,
            "chat": chat_object(chat_id, self.state.users.get(chat_id)),
            "date": int(time.time()),
        }
        thread_id = self.params.get_int("message_thread_id")
        if thread_id and chat_type(chat_id) == "supergroup":
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        message.update((key, value) for key, value in content.items() if value is not None)
        return message


def validate_inline_keyboard(rows: Any) -> list[list[dict[str, Any]]]:
    """Check an inline keyboard like Telegram (callback_data 1-64 bytes, one action per button)."""
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
    keyboard = []
    for row in rows:
        checked_row = []
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request('can\'t parse inline keyboard button: Field "text" must be of type String')
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                    raise bad_request(BUTTON_DATA_INVALID)
            elif "url" in button:
                if not isinstance(button["url"], str) or checked_link(button["url"]) is None:
                    raise bad_request("BUTTON_URL_INVALID")
            elif not any(action in button for action in _BUTTON_ACTIONS):
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
            checked_row.append(dict(button))
        keyboard.append(checked_row)
    return keyboard
