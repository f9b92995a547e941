"""/health, /health/live, /health/ready and /metrics, as a monitor and Prometheus see them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bridge.models import Delivery, Event, Recipient, Worker

pytestmark = pytest.mark.django_db


def make_worker(age_seconds: float = 0) -> Worker:
    now = timezone.now() - timedelta(seconds=age_seconds)
    return Worker.objects.create(
        name=f"w{age_seconds}", hostname="h", pid=1, started_at=now, heartbeat_at=now
    )


def make_deliveries(sent: int, dead: int) -> None:
    recipient = Recipient.objects.create(chat_id=42)
    for i in range(sent + dead):
        event = Event.objects.create(
            event_id=f"e{i}",
            type="info_notification",
            category="notifications",
            title="t",
            timestamp=timezone.now(),
        )
        Delivery.objects.create(
            event=event,
            recipient=recipient,
            status="sent" if i < sent else "dead",
            sent_at=timezone.now() if i < sent else None,
        )


def test_health_reports_the_originals_fields_and_queue_depth(client):
    make_worker()
    make_deliveries(sent=3, dead=0)
    body = client.get("/health").json()
    for field in (
        "status",
        "uptime_seconds",
        "memory_usage_mb",
        "cpu_usage_percent",
        "events_processed",
        "error_rate_percent",
        "queue_depth",
        "last_delivery",
    ):
        assert field in body
    assert body["status"] == "healthy"
    assert body["memory_usage_mb"] > 10
    assert body["last_delivery"] is not None


def test_health_warns_without_a_live_worker(client):
    make_worker(age_seconds=120)
    body = client.get("/health").json()
    assert body["status"] == "warning"
    assert any("worker" in p for p in body["problems"])


def test_health_is_critical_with_503_when_most_sends_fail(client):
    make_worker()
    make_deliveries(sent=1, dead=3)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "critical"
    assert response.json()["error_rate_percent"] == 75.0


def test_ready_needs_a_recent_worker_heartbeat(client):
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] is False
    make_worker()
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()


def test_live_always_answers(client):
    assert client.get("/health/live").json() == {"status": "alive"}


def test_metrics_are_open_without_a_token_and_name_the_bridge_metrics(client, settings):
    settings.CC_TELEGRAM_METRICS_TOKEN = ""
    body = client.get("/metrics").content.decode()
    assert "cc_telegram_events_received_total" in body
    assert "django_http_requests" in body


def test_metrics_need_the_bearer_token_when_one_is_set(client, settings):
    settings.CC_TELEGRAM_METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
