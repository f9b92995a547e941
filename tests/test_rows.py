"""bridge.queue.rows.insert_new: the hot inserts written once, storing what bulk_create would store."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from bridge.models import Event, QueueEntry
from bridge.queue.rows import insert_new

pytestmark = pytest.mark.django_db


def event(event_id: str, **fields) -> Event:
    return Event(
        event_id=event_id,
        type="task_completed",
        category="task_management",
        title=f"title of {event_id}",
        timestamp=timezone.now(),
        **fields,
    )


def test_inserted_rows_get_their_primary_keys_defaults_and_stored_values():
    rows = [event("a", data={"files": ["x.py"], "n": 2}), event("b")]
    before = timezone.now()

    insert_new(rows)

    assert all(row.pk and not row._state.adding for row in rows)
    stored = {row.event_id: row for row in Event.objects.filter(pk__in=[row.pk for row in rows])}
    assert stored["a"].pk == rows[0].pk and stored["b"].pk == rows[1].pk
    assert stored["a"].data == {"files": ["x.py"], "n": 2}
    assert stored["b"].status == Event.Status.QUEUED and stored["b"].source == "claude-code"
    assert stored["a"].received_at >= before  # auto_now_add filled as by save()


def test_queue_entry_payload_bytes_round_trip():
    [row] = [event("c")]
    insert_new([row])
    entry = QueueEntry(
        event_id=row.pk, lane=3, payload=b"\x00\xffzstd", compressed=True, available_at=timezone.now()
    )

    insert_new([entry])

    stored = QueueEntry.objects.get(pk=entry.pk)
    assert (bytes(stored.payload), stored.compressed, stored.lane) == (b"\x00\xffzstd", True, 3)


def test_duplicate_event_id_raises_integrity_error_and_stores_none_of_the_batch():
    insert_new([event("dup")])

    with pytest.raises(IntegrityError), transaction.atomic():
        insert_new([event("fresh"), event("dup")])

    assert list(Event.objects.order_by("event_id").values_list("event_id", flat=True)) == ["dup"]


def test_batch_over_the_parameter_limit_is_inserted_whole_in_order():
    rows = [event(f"bulk-{i:04d}") for i in range(300)]  # 300 rows x 13 columns: several statements on SQLite

    insert_new(rows)

    assert [row.event_id for row in Event.objects.order_by("pk")] == [row.event_id for row in rows]
    assert [row.pk for row in rows] == sorted(row.pk for row in rows)


def test_values_of_another_type_than_their_column_are_prepared_as_the_orm_prepares_them():
    row = event("typed", priority="2", source=7)  # a str for an integer column, an int for a text one
    insert_new([row])
    entry = QueueEntry(
        event_id=str(row.pk), lane=True, payload=b"p", compressed=1, available_at=timezone.now()
    )

    insert_new([entry])

    stored = Event.objects.get(pk=row.pk)
    assert (stored.priority, stored.source) == (2, "7")
    queued = QueueEntry.objects.get(pk=entry.pk)
    assert (queued.event_id, queued.lane, queued.compressed) == (row.pk, 1, True)
