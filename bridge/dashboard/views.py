"""The dashboard page; its data comes over the websocket (bridge.consumers.DashboardConsumer)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from bridge.csp import strict_csp
from bridge.dashboard.stats import BUCKET_SECONDS, WINDOW_SECONDS

WEBSOCKET_PATH = "/ws/dashboard/"


@require_GET
@staff_member_required
@strict_csp
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/index.html",
        {
            "websocket_path": WEBSOCKET_PATH,
            "bucket_seconds": BUCKET_SECONDS,
            "window_seconds": WINDOW_SECONDS,
            "sandbox_on": settings.CC_TELEGRAM_SANDBOX,
        },
    )
