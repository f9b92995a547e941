"""The operator's side: live tuning through the channel layer, admin operations, the commands behind them, the
sandbox controls, `manage.py up`, and that none of it opens to an anonymous visitor."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bridge import operations
from bridge.consumers import WORKERS_GROUP
from bridge.events.catalog import CATALOG
from bridge.models import (
    AuditEntry,
    BridgeSettings,
    Delivery,
    Event,
    Recipient,
    Response,
    Worker,
    bump_settings,
)
from bridge.pipeline import Pipeline
from bridge.queue.base import NewEntry
from bridge.sandbox.mount import emulator_state
from bridge.sandbox.users import SANDBOX_CHAT_ID, ensure_sandbox_recipient
from bridge.telegram.send import build_sender
from bridge.worker import WorkerHost
from tests.emulator_fixtures import TEST_TOKEN

ROOT = Path(__file__).resolve().parent.parent
ALICE = 111111


# --- helpers ----------------------------------------------------------------------------------------------------
def listen(group: str) -> str:
    """A fresh channel in ``group``, as a worker's control channel would be."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def receive(channel: str, timeout: float = 5.0) -> dict:
    async def get() -> dict:
        return await asyncio.wait_for(get_channel_layer().receive(channel), timeout)

    return async_to_sync(get)()


def settings_form(**overrides) -> dict:
    data = {k: v for k, v in BridgeSettings.load().as_dict().items() if k != "version"}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v is not False}
    data.update(overrides)
    return data


def make_event(n: int, *, status: str = Event.Status.DONE, age_days: float = 0) -> Event:
    event = Event.objects.create(
        event_id=f"evt-{n}",
        type="task_completion",
        category=CATALOG["task_completion"].category,
        title=f"Task {n}",
        timestamp=timezone.now(),
        status=status,
    )
    if age_days:
        Event.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(days=age_days))
    return event


def deliver(event: Event, recipient: Recipient, status: str) -> Delivery:
    return Delivery.objects.create(
        event=event, recipient=recipient, status=status, attempts=3, last_error="boom"
    )


def queue_depth() -> int:
    async def depth(queue) -> int:
        return sum((await queue.depth()).values())

    return operations.on_queue(depth)


def dead_letter_one(event: Event) -> None:
    """Put ``event`` in the queue and make the queue give up on it, as after too many crashed claims."""

    async def kill(queue) -> None:
        await queue.enqueue_batch([NewEntry(event.pk, event.event_id, 2, b"{}")])
        (claimed,) = await queue.claim("test", 1)
        await queue.dead_letter(claimed, "claimed too often")

    operations.on_queue(kill)


def action(client, changelist: str, name: str, pks: list[int]):
    return client.post(reverse(changelist), {"action": name, "_selected_action": [str(pk) for pk in pks]})


def messages_of(response) -> list[str]:
    """Messages the admin has for the user after ``response`` (the newest last)."""
    return [str(m) for m in response.wsgi_request._messages]


@pytest.fixture
def alice(db) -> Recipient:
    return Recipient.objects.create(chat_id=ALICE, display_name="alice")


# --- live tuning ----------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_saving_settings_tells_the_workers_after_the_commit(admin_client, django_capture_on_commit_callbacks):
    channel = listen(WORKERS_GROUP)
    url = reverse("admin:bridge_bridgesettings_change", args=(1,))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(url, settings_form(compression_level=7))
    assert response.status_code == 302
    # Nothing was sent inside the transaction: a worker told then could still read the old row.
    assert len(callbacks) == 1
    callbacks[0]()
    assert receive(channel) == {"type": "settings.changed", "version": 2}
    async_to_sync(get_channel_layer().group_discard)(WORKERS_GROUP, channel)


@pytest.mark.django_db
def test_an_earlier_version_is_restored_as_a_new_audited_version(
    admin_client, admin_user, django_capture_on_commit_callbacks
):
    bump_settings("alice", compression_level=6)  # version 2
    bump_settings("bob", compression_level=9, retry_attempts=8)  # version 3
    entry = AuditEntry.objects.filter(action="settings.change").order_by("pk").last()
    channel = listen(WORKERS_GROUP)
    restore = reverse("admin:bridge_auditentry_restore", args=(entry.pk,))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(restore, {"which": "before"})
    assert response.status_code == 302
    current = BridgeSettings.load()
    assert (current.version, current.compression_level, current.retry_attempts) == (4, 6, 5)
    audit = AuditEntry.objects.filter(action="settings.change").order_by("pk").last()
    assert audit.actor == admin_user.username
    assert f"restored version 2 (audit entry {entry.pk}, before)" in audit.detail
    assert "compression_level: 9 -> 6" in audit.detail
    assert receive(channel) == {"type": "settings.changed", "version": 4}
    async_to_sync(get_channel_layer().group_discard)(WORKERS_GROUP, channel)

    # The detail page offers the restore buttons; the changelist action does the same for one selected entry.
    page = admin_client.get(reverse("admin:bridge_auditentry_change", args=(entry.pk,)))
    assert b"Restore the values before this change" in page.content
    action(admin_client, "admin:bridge_auditentry_changelist", "restore_after", [entry.pk])
    assert BridgeSettings.load().compression_level == 9


@pytest.mark.django_db
def test_restoring_is_refused_for_anything_but_one_settings_change(admin_client, alice):
    bump_settings("alice", compression_level=6)
    other = AuditEntry.record("bridge", "recipient.seed", alice)
    response = admin_client.post(
        reverse("admin:bridge_auditentry_restore", args=(other.pk,)), {"which": "before"}
    )
    assert response.status_code == 302
    assert BridgeSettings.load().version == 2
    assert admin_client.get(reverse("admin:bridge_auditentry_restore", args=(other.pk,))).status_code == 405


@pytest.mark.django_db
def test_saving_a_recipient_tells_the_workers_and_is_audited(
    admin_client, django_capture_on_commit_callbacks
):
    channel = listen(WORKERS_GROUP)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:bridge_recipient_add"),
            {
                "chat_id": 424242,
                "display_name": "dana",
                "active": "on",
                "role": "approver",
                "min_priority": 1,
            },
        )
    assert response.status_code == 302, response.content.decode()[:1000]
    assert receive(channel) == {"type": "recipients.changed"}
    assert AuditEntry.objects.filter(
        action="recipient.add", object_id=str(Recipient.objects.get().pk)
    ).exists()
    async_to_sync(get_channel_layer().group_discard)(WORKERS_GROUP, channel)


@pytest.mark.django_db(transaction=True)
async def test_a_running_worker_applies_settings_and_sends_a_test_message(folders, emulator):
    """The worker end of the channel: a settings change applied live, and a test message sent on request."""
    from asgiref.sync import sync_to_async

    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    await Recipient.objects.acreate(chat_id=ALICE, display_name="alice")
    host = WorkerHost(Pipeline(sender_factory=build_sender))
    await host.start()
    try:
        worker = await _wait_for(lambda: Worker.objects.exclude(control_channel="").first())
        assert worker.memory_mb > 0
        changed = await sync_to_async(bump_settings)("test", compression_level=11)
        await get_channel_layer().group_send(
            WORKERS_GROUP, {"type": "settings.changed", "version": changed.version}
        )
        await _wait_for(lambda: host.pipeline.compressor.level == 11 or None)
        assert (
            await _wait_for(lambda: Worker.objects.filter(settings_version=changed.version).first())
        ) is not None

        recipient = await Recipient.objects.aget(chat_id=ALICE)
        assert await sync_to_async(operations.send_test_message)(recipient, "admin") == worker.name
        message = await _wait_for(lambda: emulator.state.last_message(ALICE))
        assert message["text"].startswith("Test message from CCTelegram")
        assert await _wait_for(lambda: AuditEntry.objects.filter(action="recipient.test_sent").first())
    finally:
        await host.stop()


async def _wait_for(probe, timeout: float = 10.0):
    from asgiref.sync import sync_to_async

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await sync_to_async(probe)()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- admin operations -----------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_retry_failed_requeues_the_events_of_failed_deliveries(admin_client, alice):
    failed, fine = make_event(1, status=Event.Status.FAILED), make_event(2)
    deliver(failed, alice, Delivery.Status.DEAD)
    deliver(fine, alice, Delivery.Status.SENT)
    response = action(admin_client, "admin:bridge_event_changelist", "retry_failed", [failed.pk, fine.pk])
    assert response.status_code == 302
    assert Delivery.objects.get(event=failed).status == Delivery.Status.QUEUED
    assert Delivery.objects.get(event=fine).status == Delivery.Status.SENT
    assert queue_depth() == 1
    assert AuditEntry.objects.filter(action="events.retry").exists()


@pytest.mark.django_db
def test_retry_failed_on_deliveries_and_a_warning_when_nothing_failed(admin_client, alice):
    event = make_event(1, status=Event.Status.FAILED)
    dead = deliver(event, alice, Delivery.Status.FAILED)
    response = action(admin_client, "admin:bridge_delivery_changelist", "retry_failed", [dead.pk])
    assert "Requeued 1 events" in messages_of(response)[-1]
    response = action(admin_client, "admin:bridge_delivery_changelist", "retry_failed", [dead.pk])
    assert messages_of(response)[-1] == "None of the selected had failed or dead deliveries."


@pytest.mark.django_db
def test_requeue_dead_letters_takes_queue_and_delivery_dead_letters(admin_client, alice):
    stuck, dead = make_event(1, status=Event.Status.QUEUED), make_event(2, status=Event.Status.FAILED)
    dead_letter_one(stuck)
    deliver(dead, alice, Delivery.Status.DEAD)
    response = action(
        admin_client, "admin:bridge_event_changelist", "requeue_dead_letters", [stuck.pk, dead.pk]
    )
    assert messages_of(response) == ["Requeued 1 queue dead letters and 1 events with dead deliveries."]
    assert queue_depth() == 2
    assert Delivery.objects.get(event=dead).status == Delivery.Status.QUEUED
    assert AuditEntry.objects.filter(action="dead_letters.requeue").exists()


@pytest.mark.django_db
def test_admin_actions_need_the_csrf_token(admin_user, alice):
    event = make_event(1, status=Event.Status.FAILED)
    deliver(event, alice, Delivery.Status.DEAD)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    url = reverse("admin:bridge_event_changelist")
    form = {"action": "retry_failed", "_selected_action": [str(event.pk)]}
    assert client.post(url, form).status_code == 403
    assert Delivery.objects.get(event=event).status == Delivery.Status.DEAD
    client.get(url)  # the changelist sets the CSRF cookie, as a browser would get it
    token = client.cookies["csrftoken"].value
    assert client.post(url, {**form, "csrfmiddlewaretoken": token}).status_code == 302
    assert Delivery.objects.get(event=event).status == Delivery.Status.QUEUED


@pytest.mark.django_db
def test_send_test_message_asks_one_live_worker_or_says_none_runs(admin_client, alice):
    url = "admin:bridge_recipient_changelist"
    response = action(admin_client, url, "send_test_message", [alice.pk])
    assert "No bridge worker is running" in messages_of(response)[-1]
    now = timezone.now()
    Worker.objects.create(
        name="stale",
        hostname="h",
        pid=1,
        started_at=now,
        heartbeat_at=now - timedelta(minutes=5),
        control_channel="gone",
    )
    channel = async_to_sync(get_channel_layer().new_channel)()
    Worker.objects.create(
        name="w1", hostname="h", pid=2, started_at=now, heartbeat_at=now, control_channel=channel
    )
    response = action(admin_client, url, "send_test_message", [alice.pk])
    assert "Asked worker w1" in messages_of(response)[-1]
    message = receive(channel)
    assert (message["type"], message["chat_id"]) == ("test.send", ALICE)
    assert AuditEntry.objects.filter(action="recipient.test", object_id=str(alice.pk)).exists()


@pytest.mark.django_db
def test_history_filters_by_status_type_recipient_and_date(admin_client, alice):
    bob = Recipient.objects.create(chat_id=222, display_name="bob")
    one, two = make_event(1), make_event(2)
    deliver(one, alice, Delivery.Status.SENT)
    deliver(two, bob, Delivery.Status.DEAD)
    events = reverse("admin:bridge_event_changelist")
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    page = admin_client.get(events, {"recipient": str(bob.pk)})
    assert list(page.context["cl"].queryset) == [two]
    page = admin_client.get(events, {"received_at__gte": str(midnight), "type": "task_completion"})
    assert page.context["cl"].result_count == 2
    deliveries = reverse("admin:bridge_delivery_changelist")
    page = admin_client.get(deliveries, {"status__exact": "dead", "recipient__id__exact": str(bob.pk)})
    assert [d.event for d in page.context["cl"].queryset] == [two]
    page = admin_client.get(deliveries, {"q": "evt-1"})
    assert [d.event for d in page.context["cl"].queryset] == [one]


@pytest.mark.django_db
def test_worker_list_shows_stale_workers_and_settings_behind(admin_client):
    now = timezone.now()
    bump_settings("test", compression_level=5)  # version 2
    Worker.objects.create(
        name="fresh", hostname="h", pid=1, started_at=now, heartbeat_at=now, settings_version=2
    )
    Worker.objects.create(
        name="old",
        hostname="h",
        pid=2,
        started_at=now,
        heartbeat_at=now - timedelta(minutes=2),
        settings_version=1,
    )
    page = admin_client.get(reverse("admin:bridge_worker_changelist")).content.decode()
    assert "2 (behind)" in page
    assert 'alt="True"' in page and 'alt="False"' in page


@pytest.mark.django_db
def test_purge_page_previews_then_purges_and_audits(admin_client, alice):
    old, recent = make_event(1, age_days=40), make_event(2)
    queued_old = make_event(3, status=Event.Status.QUEUED, age_days=40)
    deliver(old, alice, Delivery.Status.SENT)
    url = reverse("admin:bridge_event_purge")
    page = admin_client.get(url, {"days": 30})
    assert page.status_code == 200
    assert page.context["preview"] == operations.Purge(events=1, deliveries=1, responses=0)
    assert set(Event.objects.all()) == {old, recent, queued_old}  # a preview deletes nothing
    response = admin_client.post(url, {"days": 30})
    assert response.status_code == 302
    assert set(Event.objects.all()) == {recent, queued_old}
    assert AuditEntry.objects.get(action="history.purge").actor == "admin"
    assert admin_client.post(url, {"days": 0}).status_code == 200  # invalid: the form again, nothing purged


# --- commands -------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_purge_history_command_keeps_recent_and_unfinished_events():
    old, recent = make_event(1, age_days=10), make_event(2, age_days=1)
    unfinished = make_event(3, status=Event.Status.QUEUED, age_days=10)
    response = Response.objects.create(kind="message", user_id=1, message_text="hi")
    Response.objects.filter(pk=response.pk).update(created_at=timezone.now() - timedelta(days=10))
    out = io.StringIO()
    call_command("purge_history", "--days", "7", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "Would delete 1 events, 0 deliveries and 1 responses older than 7 days."
    assert Event.objects.count() == 3
    out = io.StringIO()
    call_command("purge_history", "--days", "7", stdout=out)
    assert out.getvalue().strip() == "Deleted 1 events, 0 deliveries and 1 responses older than 7 days."
    assert set(Event.objects.all()) == {recent, unfinished}
    assert not Event.objects.filter(pk=old.pk).exists()
    assert AuditEntry.objects.filter(action="history.purge", actor="manage.py purge_history").exists()


@pytest.mark.django_db
def test_replay_dead_letters_command_shows_progress_and_a_summary(alice):
    dead_letter_one(make_event(0, status=Event.Status.QUEUED))
    for n in range(1, 4):
        deliver(make_event(n, status=Event.Status.FAILED), alice, Delivery.Status.DEAD)
    out, err = io.StringIO(), io.StringIO()
    call_command("replay_dead_letters", "--batch", "2", stdout=out, stderr=err)
    assert out.getvalue().strip() == "Requeued 1 queue dead letters and 3 events with dead deliveries."
    progress = err.getvalue()
    # Redrawn in place, batch by batch: 0/4, the queue's letter, then the deliveries two at a time.
    assert [frame.split("] ")[1] for frame in progress.strip().split("\r") if frame] == [
        "0/4 (0%)",
        "1/4 (25%)",
        "3/4 (75%)",
        "4/4 (100%)",
    ]
    assert queue_depth() == 4
    assert not Delivery.objects.filter(status=Delivery.Status.DEAD).exists()

    out = io.StringIO()
    call_command("replay_dead_letters", stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "No dead letters."


# --- the sandbox controls -------------------------------------------------------------------------------------
@pytest.fixture
def sandbox(db, settings):
    settings.CC_TELEGRAM_SANDBOX = True
    state = emulator_state()
    state.reset()
    recipient = ensure_sandbox_recipient()
    assert recipient is not None and recipient.chat_id == SANDBOX_CHAT_ID
    return state


def bot_says(state, text: str, buttons: list[tuple[str, str]]) -> int:
    def build(message_id: int) -> dict:
        return {
            "message_id": message_id,
            "chat": {"id": SANDBOX_CHAT_ID, "type": "private"},
            "date": int(time.time()),
            "text": text,
            "entities": [{"offset": 0, "length": len(text), "type": "bold"}],
            "reply_markup": {"inline_keyboard": [[{"text": t, "callback_data": d} for t, d in buttons]]},
        }

    return state.add_message(SANDBOX_CHAT_ID, build, outgoing=True)["message_id"]


def test_the_sandbox_user_is_made_only_when_there_are_no_recipients(db):
    Recipient.objects.create(chat_id=ALICE)
    assert ensure_sandbox_recipient() is None
    Recipient.objects.all().delete()
    assert ensure_sandbox_recipient().display_name == "sandbox"
    assert ensure_sandbox_recipient() is None


def test_sandbox_lists_messages_and_presses_buttons_as_the_sandbox_user(admin_client, sandbox):
    message_id = bot_says(sandbox, "Ship it?", [("Approve", "approve_t1"), ("Deny", "deny_t1")])
    body = admin_client.get(reverse("sandbox-messages"), {"since": 0}).json()
    assert [m["message"]["text"] for m in body["messages"]] == ["Ship it?"]
    assert admin_client.get(reverse("sandbox-messages"), {"since": body["version"]}).json()["messages"] == []

    press = admin_client.post(
        reverse("sandbox-press"),
        json.dumps({"message_id": message_id, "data": "approve_t1"}),
        content_type="application/json",
    )
    assert press.status_code == 200, press.content
    (update,) = sandbox.pending_updates(10)
    query = update["callback_query"]
    assert (query["data"], query["from"]["id"], query["message"]["message_id"]) == (
        "approve_t1",
        SANDBOX_CHAT_ID,
        message_id,
    )
    assert query["from"]["username"] == "admin"
    # Only the buttons the message carries can be pressed, and only on the bot's own messages.
    forged = {"message_id": message_id, "data": "approve_other"}
    assert admin_client.post(reverse("sandbox-press"), forged).status_code == 409
    assert admin_client.post(reverse("sandbox-press"), {"message_id": 99, "data": "x"}).status_code == 404

    say = admin_client.post(reverse("sandbox-say"), {"text": "looks good", "reply_to": message_id})
    assert say.status_code == 200
    text_update = sandbox.pending_updates(10)[-1]["message"]
    assert (text_update["text"], text_update["reply_to_message"]["message_id"]) == ("looks good", message_id)
    assert admin_client.post(reverse("sandbox-say"), {"text": "  "}).status_code == 400


def test_sandbox_pages_are_gone_when_a_real_bot_token_is_set(admin_client, sandbox, settings):
    settings.CC_TELEGRAM_SANDBOX = False
    assert admin_client.get(reverse("sandbox")).status_code == 404
    assert admin_client.post(reverse("sandbox-press"), {"message_id": 1, "data": "x"}).status_code == 404


def test_own_pages_carry_a_strict_content_security_policy(admin_client, sandbox):
    for name in ("dashboard", "sandbox"):
        response = admin_client.get(reverse(name))
        assert response.status_code == 200
        assert "script-src 'self'" in response["Content-Security-Policy"]


# --- anonymous visitors ---------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_anonymous_visitors_are_refused_everywhere(client, sandbox):
    entry = AuditEntry.record("x", "settings.change")
    for url in (
        reverse("admin:bridge_event_changelist"),
        reverse("admin:bridge_worker_changelist"),
        reverse("admin:bridge_event_purge"),
        reverse("dashboard"),
        reverse("sandbox"),
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response.url, url
    assert client.get(reverse("sandbox-messages")).status_code == 403
    for url in (reverse("sandbox-press"), reverse("sandbox-say")):
        assert client.post(url, {"message_id": 1, "data": "x", "text": "hi"}).status_code == 403, url
    for url in (
        reverse("admin:bridge_event_purge"),
        reverse("admin:bridge_auditentry_restore", args=(entry.pk,)),
        reverse("admin:bridge_event_changelist"),
    ):
        response = client.post(url, {"days": 1, "which": "before", "action": "retry_failed"})
        assert response.status_code == 302 and "/admin/login/" in response.url, url
    assert sandbox.pending_updates(10) == []


@pytest.mark.django_db
def test_staff_without_the_operate_permission_cannot_run_operations(client, django_user_model, alice):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    client.force_login(viewer)
    event = make_event(1, status=Event.Status.FAILED)
    deliver(event, alice, Delivery.Status.DEAD)
    page = client.get(reverse("admin:bridge_event_changelist"))
    assert page.status_code == 200
    assert "retry_failed" not in page.content.decode()
    assert client.get(reverse("admin:bridge_event_purge")).status_code == 403
    assert Delivery.objects.get(event=event).status == Delivery.Status.DEAD


# --- manage.py up ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_up_prints_where_everything_is_and_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_ALLOWED_USERS")
    }
    env.update(
        CC_TELEGRAM_HOME=str(tmp_path),
        PYTHONUNBUFFERED="1",
        DJANGO_SUPERUSER_USERNAME="operator",
        DJANGO_SUPERUSER_PASSWORD="a-long-test-password",
    )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        banner = "".join(lines)
        base = f"http://localhost:{port}"
        for url in ("/admin/", "/dashboard/", "/sandbox/", "/health", "/metrics"):
            assert base + url in banner, banner
        assert "created the sandbox approver 1000000002" in banner
        assert "as 'operator'" in banner
        time.sleep(1)  # the bridge is running: its tasks must drain, not be killed
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=15)
        assert process.returncode == 0, rest
        assert time.monotonic() - started < 10
        assert "Stopped." in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
