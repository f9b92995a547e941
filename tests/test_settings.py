"""Settings come from the environment, and every bad value names its variable."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS_FILE = Path(__file__).resolve().parent.parent / "cctelegram" / "settings.py"


def load_settings(monkeypatch, tmp_path, **env):
    monkeypatch.setenv("CC_TELEGRAM_HOME", str(tmp_path / "home"))
    for name in ("REDIS_URL", "CC_TELEGRAM_REDIS_URL", "DATABASE_URL", "TELEGRAM_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("settings_probe", SETTINGS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TELEGRAM_ALLOWED_USERS", "12345,not-a-number"),
        ("CC_TELEGRAM_MESSAGE_STYLE", "verbose"),
        ("CC_TELEGRAM_TIMEZONE", "Mars/Olympus_Mons"),
        ("DJANGO_DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://localhost/db"),
        ("DATABASE_URL", "postgres://localhost:5432/"),
        ("REDIS_URL", "localhost:6379"),
        ("CC_TELEGRAM_REDIS_URL", "http://localhost:6379"),
        ("DJANGO_CONN_MAX_AGE", "-5"),
        ("DJANGO_CONN_MAX_AGE", "a minute"),
        ("TELEGRAM_BOT_TOKEN", "123:abc def"),
    ],
)
def test_bad_environment_value_names_the_variable(monkeypatch, tmp_path, name, value):
    env = {name: value}
    if name == "DJANGO_CONN_MAX_AGE":
        env["DATABASE_URL"] = "postgres://u@localhost:5432/db"
    with pytest.raises(ImproperlyConfigured) as excinfo:
        load_settings(monkeypatch, tmp_path, **env)
    assert name in str(excinfo.value)


def test_secret_values_are_never_echoed_in_errors(monkeypatch, tmp_path):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        load_settings(monkeypatch, tmp_path, TELEGRAM_BOT_TOKEN="123:secret value")
    assert "secret" not in str(excinfo.value)
    with pytest.raises(ImproperlyConfigured) as excinfo:
        load_settings(monkeypatch, tmp_path, REDIS_URL="tcp://user:hunter2@host")
    assert "hunter2" not in str(excinfo.value)


def test_defaults_are_sqlite_under_home_and_in_memory_layers(monkeypatch, tmp_path):
    module = load_settings(monkeypatch, tmp_path)
    home = tmp_path / "home"
    assert home.is_dir(), "CC_TELEGRAM_HOME is created on first run"
    assert module.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(module.DATABASES["default"]["NAME"]).parent == home
    assert module.CACHES["default"]["BACKEND"].endswith("LocMemCache")
    assert module.CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert module.CC_TELEGRAM_EVENTS_DIR == home / "events"
    assert module.CC_TELEGRAM_RESPONSES_DIR == home / "responses"
    assert module.CC_TELEGRAM_SANDBOX is True
    assert module.ALLOWED_HOSTS == ["localhost", "127.0.0.1", "[::1]"]
    assert (home / "secret_key").read_text().strip() == module.SECRET_KEY


def test_database_url_selects_postgresql(monkeypatch, tmp_path):
    module = load_settings(monkeypatch, tmp_path, DATABASE_URL="postgres://bob:p%40ss@db.internal:6543/cct")
    db = module.DATABASES["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "bob",
        "p@ss",
        "db.internal",
        "6543",
        "cct",
    )


@pytest.mark.parametrize("variable", ["REDIS_URL", "CC_TELEGRAM_REDIS_URL"])
def test_redis_url_switches_cache_and_channel_layer(monkeypatch, tmp_path, variable):
    module = load_settings(monkeypatch, tmp_path, **{variable: "redis://127.0.0.1:6379/3"})
    assert module.REDIS_URL == "redis://127.0.0.1:6379/3"
    assert module.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    assert module.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"


def test_allowed_users_and_token_are_read(monkeypatch, tmp_path):
    module = load_settings(
        monkeypatch, tmp_path, TELEGRAM_ALLOWED_USERS=" 111, 222 ,", TELEGRAM_BOT_TOKEN="123456:ABCdef"
    )
    assert module.TELEGRAM_ALLOWED_USERS == [111, 222]
    assert module.CC_TELEGRAM_SANDBOX is False


def test_timezone_and_style_are_validated_values(monkeypatch, tmp_path):
    module = load_settings(
        monkeypatch, tmp_path, CC_TELEGRAM_TIMEZONE="Europe/Berlin", CC_TELEGRAM_MESSAGE_STYLE="DETAILED"
    )
    assert module.CC_TELEGRAM_TIMEZONE == "Europe/Berlin"
    assert module.CC_TELEGRAM_MESSAGE_STYLE == "detailed"


def test_sandbox_token_and_secret_key_are_random_per_installation(monkeypatch, tmp_path):
    first = load_settings(monkeypatch, tmp_path / "one")
    again = load_settings(monkeypatch, tmp_path / "one")
    other = load_settings(monkeypatch, tmp_path / "two")
    # Every process of one installation reads the same values; another installation has its own.
    assert first.CC_TELEGRAM_SANDBOX_TOKEN == again.CC_TELEGRAM_SANDBOX_TOKEN
    assert first.SECRET_KEY == again.SECRET_KEY
    assert first.CC_TELEGRAM_SANDBOX_TOKEN != other.CC_TELEGRAM_SANDBOX_TOKEN
    assert first.SECRET_KEY != other.SECRET_KEY
    bot_id, _, secret = first.CC_TELEGRAM_SANDBOX_TOKEN.partition(":")
    assert bot_id.isdigit() and len(secret) >= 32
    for name in ("sandbox-token", "secret_key"):
        assert (tmp_path / "one" / "home" / name).stat().st_mode & 0o777 == 0o600


def test_no_sandbox_token_when_a_real_bot_token_is_set(monkeypatch, tmp_path):
    module = load_settings(monkeypatch, tmp_path, TELEGRAM_BOT_TOKEN="123456:real-token")
    assert module.CC_TELEGRAM_SANDBOX is False
    assert module.CC_TELEGRAM_SANDBOX_TOKEN == ""
    assert not (tmp_path / "home" / "sandbox-token").exists()


def test_installation_secret_is_created_once_by_concurrent_processes(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    from cctelegram.env import installation_secret

    path = tmp_path / "token"
    with ProcessPoolExecutor(4) as pool:
        values = set(pool.map(_read_or_make, [path] * 16))
    assert len(values) == 1
    assert installation_secret(path, lambda: "never used") in values


def _read_or_make(path):
    import secrets

    from cctelegram.env import installation_secret

    return installation_secret(path, lambda: secrets.token_hex(16))
