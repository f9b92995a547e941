"""/health, /health/live, /health/ready and /metrics, as a monitor and Prometheus see them: through Django's views
(the test client) and through the web process's ASGI application, which answers them in front of Django."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from bridge import health, metrics
from bridge.models import Delivery, Event, Recipient, Worker
from cctelegram.asgi import application

# The figures are computed on Django's database thread, which opens and closes its own connections: the rows a
# test writes must be committed for it to see them.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_figures(monkeypatch):
    """Every request computes its figures (a test changes the world, then asks at once); the reuse of a report
    within its maximum age is tested on its own below."""
    for snapshot in (health.REPORT, health.READY, metrics.EXPOSITION):
        monkeypatch.setattr(snapshot, "max_age", 0)


@pytest.fixture
async def web():
    """An HTTP client of the web process's ASGI application, as daphne serves it."""
    transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


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


# --- the same answers in front of Django -------------------------------------------------------------------------
async def test_the_web_process_answers_health_with_the_same_figures_and_503_when_critical(web):
    await sync_to_async(make_worker)()
    await sync_to_async(make_deliveries)(sent=1, dead=3)
    response = await web.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "critical" and body["error_rate_percent"] == 75.0
    assert body["workers"] == 1 and body["last_delivery"] is not None
    assert response.headers["content-type"] == "application/json"
    assert "no-store" in response.headers["cache-control"]


async def test_the_web_process_answers_live_and_ready(web):
    assert (await web.get("/health/live")).json() == {"status": "alive"}
    response = await web.get("/health/ready")
    assert response.status_code == 503 and response.json()["checks"]["worker"] is False
    await sync_to_async(make_worker)()
    response = await web.get("/health/ready")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["database"] is True


async def test_the_web_process_serves_metrics_behind_the_token(web, settings):
    settings.CC_TELEGRAM_METRICS_TOKEN = "front-token"
    refused = await web.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert "cc_telegram" not in refused.text
    assert (await web.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
    allowed = await web.get("/metrics", headers={"Authorization": "Bearer front-token"})
    assert allowed.status_code == 200
    assert "cc_telegram_events_received_total" in allowed.text
    assert allowed.headers["content-type"].startswith("text/plain")


async def test_the_front_sends_other_methods_and_unknown_hosts_on_to_django(web):
    assert (await web.options("/health")).status_code == 405
    assert (await web.head("/metrics")).status_code == 405
    assert (await web.get("/health/live", headers={"Host": "evil.example"})).status_code == 400


async def test_the_front_keeps_the_cache_headers_of_the_django_views(web, async_client):
    front = await web.get("/health/live")
    django = await async_client.get("/health/live")
    assert front.headers["cache-control"] == django.headers["Cache-Control"]
    assert "expires" in front.headers and "Expires" in django.headers


# --- one computation for many requests ---------------------------------------------------------------------------
async def test_concurrent_requests_share_one_report(web):
    await sync_to_async(make_worker)()
    reports = await asyncio.gather(*(health.REPORT.get() for _ in range(20)))
    assert all(report is reports[0] for report in reports)  # one computation, though none may be reused
    responses = await asyncio.gather(*(web.get("/health") for _ in range(20)))
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["workers"] for r in responses} == {1}


async def test_a_report_is_reused_within_its_maximum_age_then_recomputed(web, monkeypatch):
    monkeypatch.setattr(health.REPORT, "max_age", 3600)
    health.REPORT.forget()
    first = (await web.get("/health")).json()
    assert first["workers"] == 0
    await sync_to_async(make_worker)()
    assert (await web.get("/health")).json() == first  # within its age: the same report
    monkeypatch.setattr(health.REPORT, "max_age", 0)
    assert (await web.get("/health")).json()["workers"] == 1


async def test_metrics_are_rendered_once_for_concurrent_scrapes(web):
    renderings = await asyncio.gather(*(metrics.EXPOSITION.get() for _ in range(10)))
    assert all(rendering is renderings[0] for rendering in renderings)
    responses = await asyncio.gather(*(web.get("/metrics") for _ in range(10)))
    assert all("cc_telegram_messages_total" in r.text for r in responses)
