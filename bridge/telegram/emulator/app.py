"""The emulator as an ASGI application: the Bot API, file downloads and the control API.

``build_app(state, prefix="")`` serves
  ``{prefix}/bot<token>/<method>``       the Bot API (GET with query parameters; POST with JSON, urlencoded or
                                         multipart bodies), answering Telegram's envelope;
  ``{prefix}/file/bot<token>/<path>``    files uploaded with sendPhoto/sendDocument or injected;
  ``{prefix}/_emulator/...``             the control API (see ``control``).
It imports nothing from Django, so it runs alone (``python -m bridge.telegram.emulator``), in a test thread
(``EmulatorServer``) or mounted in the project's ASGI application.

The send path is kept lean (the body is parsed once, one short lock, linear-time entity parsing; about 0.1-0.2 ms
of Python per sendMessage on top of uvicorn's HTTP handling) because a benchmark pushes hundreds of sendMessage
calls per second through it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .call import Call
from .control import control_routes
from .errors import ApiError, bad_request, not_found
from .faults import FaultRule
from .media import find_by_path
from .methods import METHODS
from .params import Params, UploadedFile
from .state import EmulatorState

_MAX_UPLOAD = 50 * 1024 * 1024  # Telegram's limit for bots uploading files


def _json_response(body: dict[str, Any], status: int = 200) -> Response:
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(payload, status_code=status, media_type="application/json")


async def read_params(request: Request) -> Params:
    """Parameters from the query string and the body, as Telegram reads them; raises 400 on a bad body."""
    values: dict[str, Any] = dict(request.query_params) if request.scope.get("query_string") else {}
    if request.method != "POST":
        return Params(values)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        files: dict[str, UploadedFile] = {}
        async with request.form(max_part_size=_MAX_UPLOAD) as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read()
                    files[name] = UploadedFile(value.filename or name, value.content_type or "", data)
                else:
                    values[name] = value
        return Params(values, files)
    body = await request.body()
    if not body:
        return Params(values)
    if content_type.startswith("application/json"):
        try:
            data = json.loads(body)
        except ValueError:
            raise bad_request("can't parse JSON object") from None
        if not isinstance(data, dict):
            raise bad_request("JSON object expected")
        values.update(data)
    else:
        values.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return Params(values)


async def _hold(request: Request, state: EmulatorState, seconds: float) -> None:
    """Keep a request open until the client gives up, ``seconds`` pass, or the server closes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not state.closing:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.05)


async def _invoke(handler: Any, call: Call) -> Any:
    result = handler(call)
    if asyncio.iscoroutine(result):
        result = await result
    return result


async def _run_with_fault(handler: Any, call: Call, fault: FaultRule, request: Request) -> Any:
    result = await _invoke(handler, call) if fault.apply else None
    if fault.delay_ms:
        await asyncio.sleep(fault.delay_ms / 1000)
    if fault.timeout:
        await _hold(request, call.state, fault.hold_ms / 1000)
    error = fault.error()
    if error is not None:
        raise error
    return result if fault.apply else await _invoke(handler, call)


def _chat_of(params: Params) -> int | None:
    try:
        return int(params.values["chat_id"])
    except (KeyError, TypeError, ValueError):
        return None


def build_app(state: EmulatorState, *, prefix: str = "") -> Starlette:
    """The emulator's ASGI app over ``state``; ``prefix`` (e.g. ``/telegram-emulator``) prefixes every route."""

    async def bot_api(request: Request) -> Response:
        method = request.path_params["method"].lower()
        name = method
        params = Params({})
        try:
            bot = state.authorize(request.path_params["token"])
            entry = METHODS.get(method)
            if entry is None:
                raise not_found()
            name, handler = entry
            params = await read_params(request)
            call = Call(state, bot, method, params)
            if state.faults.rules:
                with state.lock:
                    fault = state.faults.pick(method, _chat_of(params))
            else:
                fault = None
            if fault is None:
                result = await _invoke(handler, call)
            else:
                result = await _run_with_fault(handler, call, fault, request)
        except ApiError as error:
            state.record_call(name, params.public(), error.status, error.description)
            return _json_response(error.envelope(), error.status)
        state.record_call(name, params.public(), 200, None)
        return _json_response({"ok": True, "result": result})

    async def download(request: Request) -> Response:
        try:
            state.authorize(request.path_params["token"])
        except ApiError as error:
            return _json_response(error.envelope(), error.status)
        stored = find_by_path(state.files, request.path_params["file_path"])
        if stored is None:
            return _json_response(not_found().envelope(), 404)
        return Response(stored.data, media_type=stored.mime_type)

    routes = [
        Route(f"{prefix}/bot{{token}}/{{method}}", bot_api, methods=["GET", "POST"]),
        Route(f"{prefix}/file/bot{{token}}/{{file_path:path}}", download, methods=["GET"]),
        *control_routes(state, f"{prefix}/_emulator"),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = state
    return app
