"""The admin opens on an empty database and on 10,000 events with the same, small number of queries."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from bridge.models import AuditEntry, BridgeSettings, Delivery, Event, QueueEntry, Recipient, Response, Worker

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "admin:bridge_event_changelist",
    "admin:bridge_delivery_changelist",
    "admin:bridge_response_changelist",
    "admin:bridge_auditentry_changelist",
    "admin:bridge_recipient_changelist",
    "admin:bridge_queueentry_changelist",
    "admin:bridge_worker_changelist",
]


def fill_history(count: int) -> None:
    now = timezone.now()
    recipients = Recipient.objects.bulk_create(
        [Recipient(chat_id=1000 + i, display_name=f"r{i}") for i in range(10)]
    )
    events = Event.objects.bulk_create(
        [
            Event(
                event_id=f"evt-{i}",
                type="task_completion",
                category="task_management",
                title=f"Task {i}",
                timestamp=now,
            )
            for i in range(count)
        ],
        batch_size=2000,
    )
    Delivery.objects.bulk_create(
        [Delivery(event=e, recipient=recipients[i % 10], status="sent") for i, e in enumerate(events)],
        batch_size=2000,
    )
    Response.objects.bulk_create(
        [Response(event=e, kind="callback_query", user_id=1000, decision="approved") for e in events[:2000]]
    )
    QueueEntry.objects.bulk_create(
        [QueueEntry(event=e, payload=b"{}", available_at=now) for e in events[:2000]]
    )
    AuditEntry.objects.bulk_create(
        [AuditEntry(actor="bridge", action="event.quarantined") for _ in range(2000)]
    )
    Worker.objects.create(name="w1", hostname="h", pid=1, started_at=now, heartbeat_at=now)


def query_counts(client) -> dict[str, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for name in CHANGELISTS:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(reverse(name))
        assert response.status_code == 200, name
        counts[name] = len(ctx.captured_queries)
    return counts


def test_changelists_use_the_same_few_queries_empty_and_with_10000_events(admin_client):
    empty = query_counts(admin_client)
    fill_history(10_000)
    full = query_counts(admin_client)
    for name in CHANGELISTS:
        assert full[name] <= 12, f"{name} made {full[name]} queries"
        # No N+1: a page of 100 rows costs at most a couple of extra queries (filters) over an empty one.
        assert full[name] - empty[name] <= 3, f"{name}: {empty[name]} queries empty, {full[name]} full"


def test_detail_pages_open(admin_client):
    fill_history(50)
    event = Event.objects.first()
    delivery = Delivery.objects.first()
    for url in (
        reverse("admin:bridge_event_change", args=(event.pk,)),
        reverse("admin:bridge_delivery_change", args=(delivery.pk,)),
        reverse("admin:index"),
    ):
        assert admin_client.get(url).status_code == 200, url


def test_settings_list_goes_straight_to_the_single_row(admin_client):
    response = admin_client.get(reverse("admin:bridge_bridgesettings_changelist"))
    assert response.status_code == 302
    assert response.url == reverse("admin:bridge_bridgesettings_change", args=(1,))


def settings_form(**overrides) -> dict:
    data = {k: v for k, v in BridgeSettings.load().as_dict().items() if k != "version"}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v is not False}
    data.update(overrides)
    return data


def test_out_of_range_value_in_the_admin_form_is_refused_with_a_message(admin_client):
    url = reverse("admin:bridge_bridgesettings_change", args=(1,))
    response = admin_client.post(url, settings_form(compression_level=40))
    assert response.status_code == 200
    assert "Ensure this value is less than or equal to 22." in response.content.decode()
    assert BridgeSettings.load().compression_level == 3
    assert BridgeSettings.load().version == 1


def test_saving_settings_in_the_admin_bumps_the_version_and_audits(admin_client, admin_user):
    url = reverse("admin:bridge_bridgesettings_change", args=(1,))
    response = admin_client.post(url, settings_form(compression_level=6))
    assert response.status_code == 302, response.content.decode()[:2000]
    current = BridgeSettings.load()
    assert (current.compression_level, current.version) == (6, 2)
    entry = AuditEntry.objects.get(action="settings.change")
    assert entry.actor == admin_user.username
    assert (entry.before["compression_level"], entry.after["compression_level"]) == (3, 6)
    assert "compression_level: 3 -> 6" in entry.detail


def test_history_is_read_only_and_admin_needs_login(client, admin_client):
    assert client.get(reverse("admin:bridge_event_changelist")).status_code == 302
    assert admin_client.get(reverse("admin:bridge_event_add")).status_code == 403
    assert admin_client.get(reverse("admin:bridge_bridgesettings_add")).status_code == 403
