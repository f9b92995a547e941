"""The Bot API methods about messages: getMe, sendMessage, edits, deletes, callback answers, reactions, topics.

Each handler takes a Call and returns the method's ``result`` or raises ApiError; the app wraps the envelope.
``METHODS`` maps the lower-case method name (Telegram routes method names case-insensitively) to its canonical
name and handler, media and update methods included.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import media, polling
from .call import Call
from .errors import bad_request
from .objects import bot_me, chat_type
from .records import MessageRecord

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same as a current "
    "content and reply markup of the message"
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# The emoji a bot may react with (Bot API, ReactionTypeEmoji).
REACTION_EMOJI = frozenset(
    [
        "❤",
        "👍",
        "👎",
        "🔥",
        "🥰",
        "👏",
        "😁",
        "🤔",
        "🤯",
        "😱",
        "🤬",
        "😢",
        "🎉",
        "🤩",
        "🤮",
        "💩",
        "🙏",
        "👌",
        "🕊",
        "🤡",
        "🥱",
        "🥴",
        "😍",
        "🐳",
        "❤\u200d🔥",
        "🌚",
        "🌭",
        "💯",
        "🤣",
        "⚡",
        "🍌",
        "🏆",
        "💔",
        "🤨",
        "😐",
        "🍓",
        "🍾",
        "💋",
        "🖕",
        "😈",
        "😴",
        "😭",
        "🤓",
        "👻",
        "👨\u200d💻",
        "👀",
        "🎃",
        "🙈",
        "😇",
        "😨",
        "🤝",
        "✍",
        "🤗",
        "🫡",
        "🎅",
        "🎄",
        "☃",
        "💅",
        "🤪",
        "🗿",
        "🆒",
        "💘",
        "🙉",
        "🦄",
        "😘",
        "💊",
        "🙊",
        "😎",
        "👾",
        "🤷\u200d♂",
        "🤷",
        "🤷\u200d♀",
        "😡",
    ]
)

Handler = Callable[[Call], Any | Awaitable[Any]]


def get_me(call: Call) -> dict[str, Any]:
    return bot_me(call.bot["id"], call.bot["username"])


def send_message(call: Call) -> dict[str, Any]:
    chat_id = call.target_chat()
    parsed = call.message_text(call.params.get_str("text"))
    markup = call.reply_markup()
    reply = call.reply_to(chat_id)
    call.admit(chat_id)
    return call.state.add_message(
        chat_id,
        lambda message_id: call.new_message(
            chat_id,
            message_id,
            reply_to_message=reply,
            text=parsed.text,
            entities=parsed.api_entities() or None,
            reply_markup=markup,
        ),
        outgoing=True,
    )


def _own_message(call: Call, chat_id: int, action: str = "edit") -> MessageRecord:
    """The bot's message named by message_id; Telegram's 400s for a missing one or someone else's."""
    params = call.params
    if "inline_message_id" in params:
        raise bad_request("MESSAGE_ID_INVALID")
    record = call.state.get_message(chat_id, params.required_int("message_id"))
    if record is None:
        raise bad_request(f"message to {action} not found")
    if action == "edit" and not record.outgoing:
        raise bad_request("message can't be edited")
    return record


def edit_message_text(call: Call) -> dict[str, Any]:
    chat_id = call.target_chat()
    parsed = call.message_text(call.params.get_str("text"))
    markup = call.reply_markup()
    record = _own_message(call, chat_id)
    old = record.message
    if "text" not in old:
        raise bad_request("there is no text in the message to edit")
    entities = parsed.api_entities()
    if (
        old["text"] == parsed.text
        and old.get("entities", []) == entities
        and old.get("reply_markup") == markup
    ):
        raise bad_request(NOT_MODIFIED)
    # Telegram drops the inline keyboard when an edit does not repeat it.
    message = {k: v for k, v in old.items() if k not in ("entities", "reply_markup")}
    message.update(text=parsed.text, edit_date=int(time.time()))
    if entities:
        message["entities"] = entities
    if markup:
        message["reply_markup"] = markup
    call.state.replace_message(record, message)
    return message


def edit_message_reply_markup(call: Call) -> dict[str, Any]:
    chat_id = call.target_chat()
    markup = call.reply_markup()
    record = _own_message(call, chat_id)
    old = record.message
    if old.get("reply_markup") == markup:
        raise bad_request(NOT_MODIFIED)
    message = {k: v for k, v in old.items() if k != "reply_markup"}
    message["edit_date"] = int(time.time())
    if markup:
        message["reply_markup"] = markup
    call.state.replace_message(record, message)
    return message


def delete_message(call: Call) -> bool:
    chat_id = call.target_chat()
    record = _own_message(call, chat_id, "delete")
    call.state.replace_message(record, None)
    return True


def answer_callback_query(call: Call) -> bool:
    params = call.params
    query_id = params.get_str("callback_query_id")
    if not query_id:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    answer = {
        "text": params.get_str("text"),
        "show_alert": params.get_bool("show_alert"),
        "url": params.get_str("url"),
        "cache_time": params.get_int("cache_time", 0),
    }
    call.state.answer_callback(query_id, answer)
    return True


def send_chat_action(call: Call) -> bool:
    call.target_chat()
    if call.params.get_str("action") not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True


def create_forum_topic(call: Call) -> dict[str, Any]:
    """A topic in a supergroup (every supergroup is taken for a forum here). As in Telegram, the topic's id is the
    message id of the service message that opens it."""
    chat_id = call.target_chat()
    if chat_type(chat_id) != "supergroup":
        raise bad_request("the chat is not a forum")
    name = call.params.get_str("name") or ""
    if not 1 <= len(name) <= 128:
        raise bad_request("invalid forum topic name specified")
    topic = {"name": name, "icon_color": call.params.get_int("icon_color") or 0x6FB9F0}
    message = call.state.add_message(
        chat_id,
        lambda message_id: call.new_message(
            chat_id,
            message_id,
            message_thread_id=message_id,
            is_topic_message=True,
            forum_topic_created=topic,
        ),
        outgoing=True,
    )
    return {"message_thread_id": message["message_id"], **topic}


def set_message_reaction(call: Call) -> bool:
    params = call.params
    chat_id = call.target_chat()
    message_id = params.required_int("message_id")
    reactions = params.get_json("reaction") or []
    if not isinstance(reactions, list):
        raise bad_request("can't parse reaction types JSON object")
    for reaction in reactions:
        if not isinstance(reaction, dict) or reaction.get("type") not in ("emoji", "custom_emoji", "paid"):
            raise bad_request("REACTION_INVALID")
        if reaction["type"] == "emoji" and reaction.get("emoji") not in REACTION_EMOJI:
            raise bad_request("REACTION_INVALID")
    if len(reactions) > 1:
        raise bad_request("REACTIONS_TOO_MANY")
    state = call.state
    if state.get_message(chat_id, message_id) is None:
        raise bad_request("MESSAGE_ID_INVALID")
    entry = {
        "chat_id": chat_id,
        "message_id": message_id,
        "reaction": reactions,
        "is_big": params.get_bool("is_big"),
        "time": time.time(),
    }
    with state.lock:
        state.reactions.append(entry)
    return True


def set_my_commands(call: Call) -> bool:
    commands = call.params.get_json("commands") or []
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    with call.state.lock:
        call.state.commands = [dict(c) for c in commands]
    return True


def get_my_commands(call: Call) -> list[dict[str, Any]]:
    return list(call.state.commands)


def delete_my_commands(call: Call) -> bool:
    with call.state.lock:
        call.state.commands = []
    return True


def _table(*handlers: tuple[str, Handler]) -> dict[str, tuple[str, Handler]]:
    return {name.lower(): (name, handler) for name, handler in handlers}


METHODS: dict[str, tuple[str, Handler]] = _table(
    ("getMe", get_me),
    ("sendMessage", send_message),
    ("editMessageText", edit_message_text),
    ("editMessageReplyMarkup", edit_message_reply_markup),
    ("deleteMessage", delete_message),
    ("answerCallbackQuery", answer_callback_query),
    ("sendChatAction", send_chat_action),
    ("setMessageReaction", set_message_reaction),
    ("createForumTopic", create_forum_topic),
    ("setMyCommands", set_my_commands),
    ("getMyCommands", get_my_commands),
    ("deleteMyCommands", delete_my_commands),
    ("sendPhoto", media.send_photo),
    ("sendDocument", media.send_document),
    ("getFile", media.get_file),
    ("getUpdates", polling.get_updates),
    ("setWebhook", polling.set_webhook),
    ("deleteWebhook", polling.delete_webhook),
    ("getWebhookInfo", polling.get_webhook_info),
)
