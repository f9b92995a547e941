"""sendPhoto, sendDocument and getFile: uploads are kept in memory and served back at ``/file/bot<token>/...``.

The emulator does not decode images; a photo is stored as sent and reported with nominal dimensions.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from .call import Call
from .errors import bad_request
from .objects import StoredFile
from .params import UploadedFile


def _resolve(call: Call, source: UploadedFile | str, folder: str) -> StoredFile:
    """An uploaded file is stored; a string is a known file_id or an HTTP URL (recorded, not fetched)."""
    state = call.state
    if isinstance(source, UploadedFile):
        mime = source.content_type or mimetypes.guess_type(source.filename)[0] or "application/octet-stream"
        return state.store_file(source.data, source.filename or "file", mime, folder)
    known = state.files.get(source)
    if known is not None:
        return known
    if source.startswith(("http://", "https://")):
        name = source.rstrip("/").rsplit("/", 1)[-1] or "file"
        return state.store_file(
            b"", name, mimetypes.guess_type(name)[0] or "application/octet-stream", folder
        )
    raise bad_request("wrong file identifier/HTTP URL specified")


def _send_media(call: Call, field: str, folder: str) -> dict[str, Any]:
    chat_id = call.target_chat()
    source = call.params.file(field)
    if source is None:
        raise bad_request(f"there is no {field} in the request")
    caption = call.caption()
    markup = call.reply_markup()
    reply = call.reply_to(chat_id)
    stored = _resolve(call, source, folder)
    call.admit(chat_id)
    content = stored.photo_sizes() if field == "photo" else stored.document()
    return call.state.add_message(
        chat_id,
        lambda message_id: call.new_message(
            chat_id,
            message_id,
            reply_to_message=reply,
            **{field: content},
            caption=caption.text if caption else None,
            caption_entities=(caption.api_entities() or None) if caption else None,
            reply_markup=markup,
        ),
        outgoing=True,
    )


def send_photo(call: Call) -> dict[str, Any]:
    return _send_media(call, "photo", "photos")


def send_document(call: Call) -> dict[str, Any]:
    return _send_media(call, "document", "documents")


def get_file(call: Call) -> dict[str, Any]:
    file_id = call.params.get_str("file_id")
    stored = call.state.files.get(file_id or "")
    if stored is None:
        raise bad_request("invalid file_id")
    return stored.file_object()


def find_by_path(files: dict[str, StoredFile], file_path: str) -> StoredFile | None:
    """The stored file served at ``file_path`` (for the download route)."""
    for stored in list(files.values()):
        if stored.file_path == file_path:
            return stored
    return None
