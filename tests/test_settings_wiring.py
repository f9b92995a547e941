"""BridgeSettings wired to what runs: the environment's zone and style as the row's first values, event limits and
the watcher's timing applied live to a running worker."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.urls import reverse

from bridge.ingest import watcher
from bridge.ingest.quarantine import failed_dir
from bridge.models import AuditEntry, BridgeSettings, Event
from bridge.pipeline import Pipeline
from bridge.worker import WorkerHost
from tests import test_delivery

pytestmark = pytest.mark.django_db(transaction=True)

# The delivery tests' world: the emulator as the Bot API, alice as the one recipient.
world = test_delivery.world
ALICE = test_delivery.ALICE

ROOT = Path(__file__).resolve().parent.parent
WINTER_NOON_UTC = "2026-01-15T12:00:00Z"


SETTINGS_PAGE = reverse("admin:bridge_bridgesettings_change", args=(1,))


def post_settings(client, **changes):
    """Post the settings page as an operator would, with ``changes`` over the current values."""
    data = {k: v for k, v in BridgeSettings.load().as_dict().items() if k != "version"}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v is not False}
    return client.post(SETTINGS_PAGE, {**data, **changes})


def save_in_admin(client, **changes) -> None:
    response = post_settings(client, **changes)
    assert response.status_code == 302, response.content.decode()[:2000]


# --- time zone and message style from the environment ------------------------------------------------------------
async def test_a_fresh_install_shows_times_in_the_zone_and_style_of_the_environment(world, settings):
    settings.CC_TELEGRAM_TIMEZONE = "Europe/Berlin"
    settings.CC_TELEGRAM_MESSAGE_STYLE = "detailed"
    assert not await BridgeSettings.objects.aexists()
    world.drop("task_completion", "shipped", timestamp=WINTER_NOON_UTC)
    await world.run()

    (text,) = world.texts(ALICE)
    assert "2026-01-15 13:00:00 CET" in text  # detailed: seconds, and the detail line below
    assert "priority normal" in text
    row = await BridgeSettings.objects.aget()
    assert (row.timezone, row.message_style) == ("Europe/Berlin", "detailed")


async def test_a_zone_saved_in_the_admin_wins_over_the_environment(world, settings, admin_client):
    settings.CC_TELEGRAM_TIMEZONE = "Europe/Berlin"
    await sync_to_async(save_in_admin)(admin_client, timezone="Asia/Tokyo")
    world.drop("task_completion", "shipped", timestamp=WINTER_NOON_UTC)
    await world.run()

    (text,) = world.texts(ALICE)
    assert "2026-01-15 21:00 JST" in text


def test_a_row_from_before_adopts_the_environment_except_what_an_operator_changed(settings):
    settings.CC_TELEGRAM_TIMEZONE = "Europe/Berlin"
    settings.CC_TELEGRAM_MESSAGE_STYLE = "detailed"
    row = BridgeSettings.objects.create(timezone="UTC", message_style="concise")
    before = row.as_dict()
    AuditEntry.record(
        "alice",
        "settings.change",
        row,
        before={**before, "message_style": "detailed"},
        after=before,
    )
    migration = importlib.import_module("bridge.migrations.0007_settings_from_environment")
    migration.adopt_environment(apps, None)

    row = BridgeSettings.objects.get()
    assert (row.timezone, row.message_style) == ("Europe/Berlin", "concise")
    assert row.version == before["version"] + 1
    entry = AuditEntry.objects.filter(actor="bridge").get()
    assert entry.detail == "from the environment: timezone: 'UTC' -> 'Europe/Berlin'"


def test_an_unknown_zone_in_the_environment_stops_the_start_with_the_variable_named(tmp_path):
    env = {**os.environ, "CC_TELEGRAM_HOME": str(tmp_path), "CC_TELEGRAM_TIMEZONE": "Mars/Olympus_Mons"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "CC_TELEGRAM_TIMEZONE='Mars/Olympus_Mons' is not valid: expected an IANA time zone such as Europe/Berlin"
        )
    )


# --- event limits ------------------------------------------------------------------------------------------------
def test_an_out_of_range_limit_is_refused_in_the_admin_with_a_message(admin_client):
    response = post_settings(admin_client, event_max_bytes=100, event_max_depth=1000)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Ensure this value is greater than or equal to 1024." in page
    assert "Ensure this value is less than or equal to 100." in page
    assert BridgeSettings.load().version == 1


async def test_a_lowered_file_limit_quarantines_a_larger_file_with_its_reason(folders, admin_client):
    events = folders.CC_TELEGRAM_EVENTS_DIR
    host = WorkerHost(Pipeline(events_dir=events))
    await host.start()
    try:
        drop_sized(events, "before.json", 3000)
        await wait_for(lambda: Event.objects.filter(title="before.json").exists())

        await sync_to_async(save_in_admin)(admin_client, event_max_bytes=2048)
        await wait_for(lambda: host.pipeline.ingestor.limits.max_file_bytes == 2048)
        drop_sized(events, "after.json", 3000)
        note = failed_dir(events) / "after.json.error.json"
        await wait_for(note.exists)
    finally:
        await host.stop()

    reason = json.loads(note.read_text())
    assert reason["code"] == "too_large"
    assert reason["reason"] == "the event is 3000 bytes; the limit is 2048"
    assert not await Event.objects.filter(title="after.json").aexists()


def drop_sized(events: Path, name: str, size: int) -> None:
    body = json.dumps({"type": "info_notification", "title": name, "description": ""})
    body = body.replace('""', '"' + "x" * (size - len(body)) + '"')
    assert len(body) == size
    (events / f".{name}.tmp").write_text(body)
    (events / f".{name}.tmp").rename(events / name)


# --- the watcher's timing ----------------------------------------------------------------------------------------
async def test_a_changed_step_and_debounce_restart_the_running_watcher_with_them(
    folders, admin_client, monkeypatch
):
    started_with: list[tuple[int, int]] = []
    notifier = watcher.awatch

    def recording(*args, **options):
        started_with.append((options["debounce"], options["step"]))
        return notifier(*args, **options)

    monkeypatch.setattr(watcher, "awatch", recording)
    events = folders.CC_TELEGRAM_EVENTS_DIR
    host = WorkerHost(Pipeline(events_dir=events))
    await host.start()
    try:
        await wait_for(lambda: started_with == [(2, 1)])
        await sync_to_async(save_in_admin)(admin_client, watcher_debounce_ms=40, watcher_step_ms=7)
        await wait_for(lambda: started_with[-1:] == [(40, 7)])
        drop_sized(events, "late.json", 200)  # the restarted watcher still sees new files
        await wait_for(lambda: Event.objects.filter(title="late.json").exists())
    finally:
        await host.stop()


async def wait_for(probe, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await sync_to_async(probe)():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")
