from __future__ import annotations

from django.urls import path

from bridge import views

urlpatterns = [
    path("", views.home, name="home"),
    path("health", views.health_view, name="health"),
    path("health/live", views.live_view, name="health-live"),
    path("health/ready", views.ready_view, name="health-ready"),
    path("metrics", views.metrics_view, name="metrics"),
]
