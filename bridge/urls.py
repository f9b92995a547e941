from __future__ import annotations

from django.urls import path

from bridge import views
from bridge.dashboard import views as dashboard
from bridge.replies.webhook import telegram_webhook
from bridge.sandbox import views as sandbox

urlpatterns = [
    path("", views.home, name="home"),
    path("health", views.health_view, name="health"),
    path("health/live", views.live_view, name="health-live"),
    path("health/ready", views.ready_view, name="health-ready"),
    path("metrics", views.metrics_view, name="metrics"),
    path("telegram/webhook/<str:secret>", telegram_webhook, name="telegram-webhook"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("sandbox/", sandbox.chat, name="sandbox"),
    path("sandbox/messages", sandbox.messages, name="sandbox-messages"),
    path("sandbox/press", sandbox.press, name="sandbox-press"),
    path("sandbox/say", sandbox.say, name="sandbox-say"),
]
