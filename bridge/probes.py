"""/health, /health/live, /health/ready and /metrics: their answers, and an ASGI front that serves them.

Load balancers, monitors and Prometheus poll these paths hard. Through Django's ASGI handler each request costs
about 4 ms of middleware alone (every sync middleware hops to Django's one sync thread and back, twice), which caps a
web process near 200 requests a second for everything it serves; and sessions, CSRF or messages have nothing to
do with a probe. So ``with_probes`` answers a GET of these paths itself, from the same ``Answer`` the Django views
(bridge/views.py) return, with the figures of shared snapshots (``health.REPORT``, ``health.READY``,
``metrics.EXPOSITION``). Anything else, including a method other than GET or a Host outside ALLOWED_HOSTS, goes
on to Django, which answers it as always (405, 400). What the front skips: django-prometheus does not count these
requests.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import http_date

from bridge import health, metrics


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def _json(payload: dict, status: int = 200) -> Answer:
    return Answer(status, json.dumps(payload).encode(), "application/json")


async def health_answer(authorization: str = "") -> Answer:
    """Compatible with the original's /health; 503 when critical so load balancers act on it."""
    report = await health.REPORT.get()
    return _json(report.as_dict(), 503 if report.status == "critical" else 200)


_LIVE = _json({"status": "alive"})


async def live_answer(authorization: str = "") -> Answer:
    """The process answers: nothing else is checked (restart me only if this fails)."""
    return _LIVE


async def ready_answer(authorization: str = "") -> Answer:
    """Ready to take work: database, Redis when configured, and a bridge worker that reported recently."""
    checks = await health.READY.get()
    ready = all(checks.values())
    return _json({"ready": ready, "checks": checks}, 200 if ready else 503)


async def metrics_answer(authorization: str = "") -> Answer:
    """Prometheus exposition (every process sharing CC_TELEGRAM_METRICS_DIR); with CC_TELEGRAM_METRICS_TOKEN set,
    only for `Authorization: Bearer <token>`."""
    if not metrics.authorized(authorization):
        return Answer(
            401,
            b"metrics need a bearer token\n",
            "text/plain",
            (("WWW-Authenticate", 'Bearer realm="metrics"'),),
        )
    body, content_type = await metrics.EXPOSITION.get()
    return Answer(200, body, content_type)


ROUTES: dict[str, Callable[[str], Awaitable[Answer]]] = {
    "/health": health_answer,
    "/health/live": live_answer,
    "/health/ready": ready_answer,
    "/metrics": metrics_answer,
}


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _host_allowed(scope: dict) -> bool:
    """Django's own Host check (ALLOWED_HOSTS, X-Forwarded-Host when trusted), on a request holding only that."""
    request = HttpRequest()
    server = scope.get("server") or ("", 80)
    request.META = {"SERVER_NAME": server[0], "SERVER_PORT": str(server[1] or 80)}
    for header, key in ((b"host", "HTTP_HOST"), (b"x-forwarded-host", "HTTP_X_FORWARDED_HOST")):
        value = _header(scope, header)
        if value is not None:
            request.META[key] = value
    try:
        request.get_host()
    except DisallowedHost:
        return False
    return True


# What Django's never_cache puts on the views' answers: a probe's answer must never come from a cache.
_NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


def _headers(answer: Answer) -> list[tuple[bytes, bytes]]:
    """The answer's headers plus those never_cache and the security middleware add to the Django views' answers."""
    pairs = [
        ("Content-Type", answer.content_type),
        ("Content-Length", str(len(answer.body))),
        ("Expires", http_date()),
        ("Cache-Control", _NEVER_CACHE),
        ("X-Content-Type-Options", "nosniff"),
        *answer.headers,
    ]
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


def with_probes(app):
    """An ASGI app answering GET /health, /health/live, /health/ready and /metrics, and passing the rest to ``app``."""

    async def front(scope, receive, send):
        route = ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or scope["method"] != "GET" or not _host_allowed(scope):
            await app(scope, receive, send)
            return
        answer = await route(_header(scope, b"authorization") or "")
        await send({"type": "http.response.start", "status": answer.status, "headers": _headers(answer)})
        await send({"type": "http.response.body", "body": answer.body})

    return front
