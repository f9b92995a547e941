"""Plain HTTP views: health for load balancers and monitors, metrics for Prometheus.

In the web process these paths are answered in front of Django (bridge/probes.py) from the same answers; the views
serve what reaches Django (other methods, the test client) with the same contract.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bridge import probes


def home(request: HttpRequest) -> HttpResponse:
    return redirect("admin:index")


def _response(answer: probes.Answer) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
    for name, value in answer.headers:
        response[name] = value
    return response


@require_GET
@never_cache
async def health_view(request: HttpRequest) -> HttpResponse:
    return _response(await probes.health_answer())


@require_GET
@never_cache
async def live_view(request: HttpRequest) -> HttpResponse:
    return _response(await probes.live_answer())


@require_GET
@never_cache
async def ready_view(request: HttpRequest) -> HttpResponse:
    return _response(await probes.ready_answer())


@require_GET
@never_cache
async def metrics_view(request: HttpRequest) -> HttpResponse:
    return _response(await probes.metrics_answer(request.headers.get("Authorization", "")))
