"""System checks report misconfiguration with stable ids."""

from __future__ import annotations

import os

from django.core.management import call_command
from django.core.management.base import SystemCheckError

from bridge import checks


def test_token_without_allowed_users_is_reported(settings):
    settings.TELEGRAM_BOT_TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUV"
    settings.TELEGRAM_ALLOWED_USERS = []
    assert [m.id for m in checks.check_allowed_users()] == ["cctelegram.W001"]
    settings.TELEGRAM_ALLOWED_USERS = [42]
    assert checks.check_allowed_users() == []


def test_unwritable_events_folder_is_reported(folders, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folders.CC_TELEGRAM_EVENTS_DIR = blocker / "events"
    assert [m.id for m in checks.check_folders_writable()] == ["cctelegram.E001"]


def test_read_only_events_folder_is_reported(folders, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(
        checks.os,
        "access",
        lambda p, mode: False if p == folders.CC_TELEGRAM_EVENTS_DIR else real_access(p, mode),
    )
    assert [m.id for m in checks.check_folders_writable()] == ["cctelegram.E002"]


def test_unreachable_redis_is_reported(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    problems = checks.check_redis_reachable()
    assert [m.id for m in problems] == ["cctelegram.E003"]
    assert "Redis does not answer" in problems[0].msg


def test_reachable_redis_passes(settings, redis_url):
    settings.REDIS_URL = redis_url
    assert checks.check_redis_reachable() == []


def test_check_command_fails_on_errors(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    try:
        call_command("check")
    except SystemCheckError as exc:
        assert "cctelegram.E003" in str(exc)
    else:
        raise AssertionError("manage.py check passed with Redis unreachable")
