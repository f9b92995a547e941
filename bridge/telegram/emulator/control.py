"""The control API (JSON, under ``/_emulator``): play the user, inspect what the bot did, inject trouble.

  POST /callback   {chat_id, message_id, data, user?}          a button press -> callback_query update
  POST /message    {chat_id, text?, user?, reply_to_message_id?, photo?, document?, caption?}
                                                               a user message -> message update
  GET  /messages   ?chat_id&since&changed_since&incoming=1&wait=S   stored messages (wait: long-poll for news)
  GET  /calls      ?method&since                               the Bot API call log
  GET  /callbacks                                             answered callback queries
  GET  /reactions, /updates (pending), /stats                 reactions set, queued updates, counters
  GET|POST|DELETE /faults   rule or {"rules": [...]}          injected failures (see ``faults``)
  GET|POST /limits          {enabled, per_chat_per_second, ...}   flood limits (see ``limits``)
  GET|POST /chats           {chat_id, status, migrate_to_chat_id?}  blocked / not_found / migrated / ok ...
  GET|POST /settings        {strict_html}
  POST /reset                                                 forget everything
Users are ``{id, username, first_name, ...}``. Errors answer 400 ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .faults import FaultRule
from .injection import inject_callback, inject_message
from .notify import wait_for_change
from .state import EmulatorState

MAX_WAIT = 60.0


class ControlError(ValueError):
    """A control request that cannot be honoured; answered with 400."""


def _respond(body: Any, status: int = 200) -> Response:
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(payload, status_code=status, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ControlError("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ControlError("the body must be a JSON object")
    return data


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ControlError(f"{name} must be an integer") from None


def _query_int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    return None if value in (None, "") else _int(value, name)


def control_routes(state: EmulatorState, base: str) -> list[Route]:
    """The control API's routes under ``base`` (e.g. ``/_emulator``)."""

    async def press(request: Request) -> Any:
        body = await _body(request)
        if "data" not in body:
            raise ControlError("data is required")
        return inject_callback(
            state,
            _int(body.get("chat_id"), "chat_id"),
            _int(body.get("message_id"), "message_id"),
            str(body["data"]),
            user=body.get("user"),
        )

    async def say(request: Request) -> Any:
        body = await _body(request)
        reply_to = body.get("reply_to_message_id")
        thread = body.get("message_thread_id")
        return inject_message(
            state,
            _int(body.get("chat_id"), "chat_id"),
            body.get("text"),
            user=body.get("user"),
            reply_to_message_id=_int(reply_to, "reply_to_message_id") if reply_to else None,
            photo=body.get("photo"),
            document=body.get("document"),
            caption=body.get("caption"),
            message_thread_id=_int(thread, "message_thread_id") if thread else None,
        )

    async def messages(request: Request) -> Any:
        chat_id = _query_int(request, "chat_id")
        since = _query_int(request, "since") or 0
        changed_since = _query_int(request, "changed_since")
        incoming = request.query_params.get("incoming") in ("1", "true")
        wait = min(float(request.query_params.get("wait") or 0), MAX_WAIT)
        deadline = time.monotonic() + wait
        while True:
            changed = state.messages_changed.subscribe()
            try:
                found = state.sent_messages(
                    chat_id, since=since, changed_since=changed_since, include_incoming=incoming
                )
                remaining = deadline - time.monotonic()
                if found or remaining <= 0 or state.closing:
                    return {"messages": found}
                await wait_for_change(changed, remaining)
            finally:
                state.messages_changed.unsubscribe(changed)

    async def calls(request: Request) -> Any:
        method = request.query_params.get("method") or None
        return {"calls": state.call_log(method, _query_int(request, "since") or 0)}

    async def callbacks(request: Request) -> Any:
        return {"callbacks": state.answered_callbacks()}

    async def reactions(request: Request) -> Any:
        with state.lock:
            return {"reactions": list(state.reactions)}

    async def updates(request: Request) -> Any:
        with state.lock:
            return {"updates": list(state.updates)}

    async def stats(request: Request) -> Any:
        return state.stats()

    async def faults(request: Request) -> Any:
        if request.method == "DELETE":
            with state.lock:
                state.faults.clear()
        elif request.method == "POST":
            body = await _body(request)
            specs = body.get("rules", [body])
            try:
                rules = [FaultRule.from_json(spec) for spec in specs]
            except (TypeError, ValueError) as error:
                raise ControlError(str(error)) from None
            with state.lock:
                if body.get("replace"):
                    state.faults.clear()
                for rule in rules:
                    state.faults.add(rule)
        with state.lock:
            return {"rules": state.faults.to_json()}

    async def limits(request: Request) -> Any:
        if request.method == "POST":
            body = await _body(request)
            with state.lock:
                try:
                    state.flood.config = state.flood.config.updated(body)
                except (TypeError, ValueError) as error:
                    raise ControlError(str(error)) from None
        with state.lock:
            return state.flood.config.to_json()

    async def chats(request: Request) -> Any:
        if request.method == "POST":
            body = await _body(request)
            migrate_to = body.get("migrate_to_chat_id")
            try:
                state.configure_chat(
                    _int(body.get("chat_id"), "chat_id"),
                    str(body.get("status", "ok")),
                    _int(migrate_to, "migrate_to_chat_id") if migrate_to is not None else None,
                )
            except ValueError as error:
                raise ControlError(str(error)) from None
        with state.lock:
            return {
                "chats": [
                    {"chat_id": chat_id, "status": c.status, "migrate_to_chat_id": c.migrate_to_chat_id}
                    for chat_id, c in state.chats.items()
                ]
            }

    async def settings(request: Request) -> Any:
        if request.method == "POST":
            body = await _body(request)
            if "strict_html" in body:
                state.strict_html = bool(body["strict_html"])
        return {"strict_html": state.strict_html}

    async def reset(request: Request) -> Any:
        state.reset()
        return {"reset": True}

    def endpoint(handler: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                result = await handler(request)
            except ValueError as error:  # ControlError, and bad values met while injecting
                return _respond({"ok": False, "error": str(error)}, 400)
            return _respond(
                {"ok": True, **result} if isinstance(result, dict) else {"ok": True, "result": result}
            )

        return run

    table: list[tuple[str, Callable[[Request], Awaitable[Any]], list[str]]] = [
        ("/callback", press, ["POST"]),
        ("/message", say, ["POST"]),
        ("/messages", messages, ["GET"]),
        ("/calls", calls, ["GET"]),
        ("/callbacks", callbacks, ["GET"]),
        ("/reactions", reactions, ["GET"]),
        ("/updates", updates, ["GET"]),
        ("/stats", stats, ["GET"]),
        ("/faults", faults, ["GET", "POST", "DELETE"]),
        ("/limits", limits, ["GET", "POST"]),
        ("/chats", chats, ["GET", "POST"]),
        ("/settings", settings, ["GET", "POST"]),
        ("/reset", reset, ["POST"]),
    ]
    return [Route(base + path, endpoint(handler), methods=methods) for path, handler, methods in table]
