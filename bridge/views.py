"""Plain HTTP views: health for load balancers and monitors, metrics for Prometheus."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bridge import health, metrics


def home(request: HttpRequest) -> HttpResponse:
    return redirect("admin:index")


@require_GET
@never_cache
def health_view(request: HttpRequest) -> JsonResponse:
    """Compatible with the original's /health; 503 when critical so load balancers act on it."""
    report = health.check()
    return JsonResponse(report.as_dict(), status=503 if report.status == "critical" else 200)


@require_GET
@never_cache
def live_view(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is checked (restart me only if this fails)."""
    return JsonResponse({"status": "alive"})


@require_GET
@never_cache
def ready_view(request: HttpRequest) -> JsonResponse:
    """Ready to take work: database, Redis when configured, and a bridge worker that reported recently."""
    checks = {"database": health.database_ok()}
    redis = health.redis_ok()
    if redis is not None:
        checks["redis"] = redis
    checks["worker"] = checks["database"] and health.live_workers() > 0
    ready = all(checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (every process sharing CC_TELEGRAM_METRICS_DIR); with CC_TELEGRAM_METRICS_TOKEN set,
    only for `Authorization: Bearer <token>`."""
    if not metrics.authorized(request.headers.get("Authorization", "")):
        response = HttpResponse("metrics need a bearer token\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
