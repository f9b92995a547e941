"""BridgeSettings refuse out-of-range values; versions increase; recipients are seeded from the environment."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from bridge.models import AuditEntry, BridgeSettings, Recipient, bump_settings
from bridge.recipients import is_allowed, seed_from_environment

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("compression_level", 0),
        ("compression_level", 23),
        ("cache_max_entries", 5),
        ("rate_global_per_second", 0),
        ("rate_per_chat_per_second", 1000),
        ("retry_attempts", 101),
        ("approval_timeout_seconds", 1),
        ("backpressure_threshold", 150),
        ("digest_threshold", 1),
        ("mode", "loud"),
        ("message_style", "poetic"),
        ("timezone", "Nowhere/Atlantis"),
    ],
)
def test_out_of_range_setting_is_refused_with_a_message(field, value):
    current = BridgeSettings.load()
    setattr(current, field, value)
    with pytest.raises(ValidationError) as excinfo:
        current.full_clean()
    assert field in excinfo.value.message_dict
    assert excinfo.value.message_dict[field][0]


def test_max_retry_delay_below_base_is_refused():
    current = BridgeSettings.load()
    current.retry_base_delay_ms, current.retry_max_delay_ms = 5000, 1000
    with pytest.raises(ValidationError) as excinfo:
        current.full_clean()
    assert "at least the base delay" in excinfo.value.message_dict["retry_max_delay_ms"][0]


def test_defaults_match_the_documented_ones():
    current = BridgeSettings.load()
    assert (current.compression_level, current.compression_min_bytes, current.compression_timeout_ms) == (
        3,
        4096,
        5000,
    )
    assert (current.cache_max_entries, current.cache_ttl_seconds, current.cache_validate_checksums) == (
        500,
        1800,
        False,
    )
    assert (current.rate_global_per_second, current.rate_per_chat_per_second) == (30, 1)
    assert (current.rate_per_group_per_minute, current.rate_adaptive) == (20, True)
    assert (current.retry_attempts, current.retry_base_delay_ms, current.retry_max_delay_ms) == (
        5,
        1000,
        30_000,
    )
    assert current.pipeline_capacity == 100
    assert current.mode == "local"


def test_every_save_increases_the_version_and_there_is_one_row():
    first = BridgeSettings.load()
    assert first.version == 1
    first.compression_level = 6
    first.save()
    assert first.version == 2
    again = BridgeSettings(compression_level=9)
    again.save()
    assert BridgeSettings.objects.count() == 1
    assert BridgeSettings.load().version == 3
    assert BridgeSettings.load().compression_level == 9


def test_settings_cannot_be_deleted():
    with pytest.raises(ValidationError):
        BridgeSettings.load().delete()


def test_bump_settings_audits_before_and_after():
    bump_settings("alice", compression_level=7)
    entry = AuditEntry.objects.get(action="settings.change")
    assert entry.actor == "alice"
    assert entry.before["compression_level"] == 3
    assert entry.after["compression_level"] == 7
    with pytest.raises(ValidationError):
        bump_settings("alice", compression_level=99)
    assert BridgeSettings.load().compression_level == 7


def test_recipients_are_seeded_from_allowed_users_without_overruling_the_admin(settings):
    settings.TELEGRAM_ALLOWED_USERS = [111, 222]
    assert {r.chat_id for r in seed_from_environment()} == {111, 222}
    Recipient.objects.filter(chat_id=222).update(active=False, role=Recipient.Role.VIEWER)
    assert seed_from_environment() == []
    demoted = Recipient.objects.get(chat_id=222)
    assert (demoted.active, demoted.role) == (False, "viewer")
    assert is_allowed(111) and not is_allowed(222) and not is_allowed(333)
    assert AuditEntry.objects.filter(action="recipient.seed").count() == 2


def test_audit_entry_keeps_what_a_stranger_sent_even_text_a_database_refuses():
    # PostgreSQL refuses NUL in text and jsonb; unpaired surrogates are not UTF-8. The refusal is still recorded.
    entry = AuditEntry.record(
        "telegram:\x00" + "9" * 300,
        "callback.refused",
        object_id="x\ud800",
        detail="approve_deploy-a\x00",
        after={"data\x00": ["\ud83d", 1]},
    )
    entry.refresh_from_db()
    assert entry.detail == "approve_deploy-a\\x00"
    assert entry.after == {"data\\x00": ["\\ud83d", 1]}
    assert entry.object_id == "x\\ud800"
    assert entry.actor.startswith("telegram:\\x00") and len(entry.actor) == 200
