"""Django settings, read from the environment only (see .env.example for every variable).

Values an operator tunes while the bridge runs (compression, cache, rates, retries, ...) are not here: they live in
the database as BridgeSettings, so that changing them needs no restart.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from cctelegram.env import (
    env_bool,
    env_int,
    env_int_list,
    env_list,
    env_path,
    env_secret,
    env_str,
    env_timezone,
    env_url,
    installation_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Where things live -------------------------------------------------------------------------------------------
CC_TELEGRAM_HOME = env_path("CC_TELEGRAM_HOME", Path.home() / ".cc_telegram")
CC_TELEGRAM_EVENTS_DIR = env_path("CC_TELEGRAM_EVENTS_DIR", CC_TELEGRAM_HOME / "events")
CC_TELEGRAM_RESPONSES_DIR = env_path("CC_TELEGRAM_RESPONSES_DIR", CC_TELEGRAM_HOME / "responses")
try:
    CC_TELEGRAM_HOME.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(
        f"CC_TELEGRAM_HOME={str(CC_TELEGRAM_HOME)!r} cannot be created: {exc}"
    ) from exc

# --- Telegram ----------------------------------------------------------------------------------------------------
TELEGRAM_BOT_TOKEN = env_secret("TELEGRAM_BOT_TOKEN")
TELEGRAM_ALLOWED_USERS = env_int_list("TELEGRAM_ALLOWED_USERS")
# Claude Code channel (bridge.channel): "pairing" answers an unknown user's DM with a code an operator confirms
# (`manage.py pair CODE`); groups reach the sessions only when the bot is mentioned or replied to, unless False.
CC_TELEGRAM_ACCESS_POLICY = env_str(
    "CC_TELEGRAM_ACCESS_POLICY", "allowlist", choices=("allowlist", "pairing")
)
CC_TELEGRAM_GROUPS_NEED_MENTION = env_bool("CC_TELEGRAM_GROUPS_NEED_MENTION", True)
# A forum supergroup (an active Recipient) where each channel session gets a topic of its own; 0: none.
CC_TELEGRAM_CHANNEL_FORUM = env_int("CC_TELEGRAM_CHANNEL_FORUM", 0, maximum=0)
TELEGRAM_WEBHOOK_SECRET = env_secret("TELEGRAM_WEBHOOK_SECRET")
# Public base URL of this web process for webhook mode; the bridge registers <this>/telegram/webhook/<secret>.
TELEGRAM_WEBHOOK_URL = env_url("TELEGRAM_WEBHOOK_URL", schemes=("https", "http"))
# Port of the web process (`manage.py up`, daphne): the sandbox's Bot API lives there.
CC_TELEGRAM_PORT = env_int("CC_TELEGRAM_PORT", 8000, minimum=1, maximum=65535)
# No token: the built-in Bot API emulator stands in for Telegram, with a chat page at /sandbox/.
CC_TELEGRAM_SANDBOX = not TELEGRAM_BOT_TOKEN
# The emulator's own token, random per installation (kept in CC_TELEGRAM_HOME/sandbox-token): whoever can reach
# the port still cannot drive the sandbox bot without reading that file.
CC_TELEGRAM_SANDBOX_TOKEN = (
    installation_secret(CC_TELEGRAM_HOME / "sandbox-token", lambda: f"1000000001:{secrets.token_urlsafe(24)}")
    if CC_TELEGRAM_SANDBOX
    else ""
)
TELEGRAM_API_BASE_URL = env_str(
    "TELEGRAM_API_BASE_URL",
    f"http://127.0.0.1:{CC_TELEGRAM_PORT}/sandbox/bot"
    if CC_TELEGRAM_SANDBOX
    else "https://api.telegram.org/bot",
)
# Connections to the Bot API: one send in flight per connection.
CC_TELEGRAM_POOL_SIZE = env_int("CC_TELEGRAM_POOL_SIZE", 16, minimum=1, maximum=512)
# Seconds a send waits for the Bot API's answer before it counts as timed out and is retried. Shorter frees a
# stalled chat sooner; too short fails sends that were merely slow (and may then arrive twice).
CC_TELEGRAM_API_TIMEOUT = env_int("CC_TELEGRAM_API_TIMEOUT", 10, minimum=1, maximum=600)
# How messages look: the first values of BridgeSettings.message_style and .timezone (the settings row is created
# with them, and a row from before they were read adopts them unless an operator changed it). A value saved in the
# admin wins over them. A zone unknown to the zone database stops the start here, not at the first message.
CC_TELEGRAM_MESSAGE_STYLE = env_str("CC_TELEGRAM_MESSAGE_STYLE", "concise", choices=("concise", "detailed"))
CC_TELEGRAM_TIMEZONE = env_timezone("CC_TELEGRAM_TIMEZONE", "UTC")
CC_TELEGRAM_METRICS_TOKEN = env_secret("CC_TELEGRAM_METRICS_TOKEN")
# off: every cc_telegram_* metric is a no-op and Django's request metrics are not collected (the bench compares
# ingest with metrics on and off this way).
CC_TELEGRAM_METRICS = env_bool("CC_TELEGRAM_METRICS", True)
# Processes on one machine (web, run_bridge workers) sum their metrics through files in this folder:
# prometheus-client's multiprocess mode, whose own variable PROMETHEUS_MULTIPROC_DIR is accepted too.
_metrics_dir = env_str("CC_TELEGRAM_METRICS_DIR") or env_str("PROMETHEUS_MULTIPROC_DIR")
CC_TELEGRAM_METRICS_DIR = Path(_metrics_dir).expanduser().resolve() if _metrics_dir else None
if CC_TELEGRAM_METRICS_DIR is not None:
    try:
        CC_TELEGRAM_METRICS_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"CC_TELEGRAM_METRICS_DIR={str(CC_TELEGRAM_METRICS_DIR)!r} cannot be created: {exc}"
        ) from exc
    # prometheus-client chooses where values live when it is first imported: it must find the folder then.
    if "prometheus_client" in sys.modules and os.environ.get("PROMETHEUS_MULTIPROC_DIR") != str(
        CC_TELEGRAM_METRICS_DIR
    ):
        raise ImproperlyConfigured(
            "CC_TELEGRAM_METRICS_DIR is set but prometheus_client was imported before the settings; "
            "set PROMETHEUS_MULTIPROC_DIR to the same folder in the environment instead"
        )
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(CC_TELEGRAM_METRICS_DIR)
MCP_API_KEYS = env_list("MCP_API_KEYS")
# Per-client token bucket of the MCP server: generous, so a normal agent's burst is never refused.
MCP_RATE_PER_SECOND = env_int("MCP_RATE_PER_SECOND", 50, minimum=1)
MCP_RATE_BURST = env_int("MCP_RATE_BURST", 500, minimum=1)

# --- Django ------------------------------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    # A per-installation key kept beside the database: sessions survive restarts without any set-up.
    SECRET_KEY = installation_secret(CC_TELEGRAM_HOME / "secret_key", lambda: secrets.token_urlsafe(50))
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS") or ["localhost", "127.0.0.1", "[::1]"]
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_prometheus",
    "bridge",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
if not CC_TELEGRAM_METRICS:
    MIDDLEWARE = [name for name in MIDDLEWARE if not name.startswith("django_prometheus.")]

ROOT_URLCONF = "cctelegram.urls"
ASGI_APPLICATION = "cctelegram.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _sqlite(name: Path | str, timeout: float = 20) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        # WAL lets the web UI read while the bridge writes; a busy timeout instead of "database is locked";
        # IMMEDIATE takes the write lock at BEGIN, where the busy timeout applies (a deferred transaction that
        # upgrades to writing fails at once when another process writes).
        "OPTIONS": {
            "timeout": timeout,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def _database(url: str) -> dict:
    if not url:
        return {
            **_sqlite(CC_TELEGRAM_HOME / "cctelegram.sqlite3"),
            "TEST": {"NAME": CC_TELEGRAM_HOME / "test_cctelegram.sqlite3"},
        }
    parts = urlsplit(url)
    if parts.scheme in ("sqlite", "sqlite3"):
        # sqlite:////abs/path.sqlite3[?timeout=SECONDS]: the same connection options as the default database.
        query = dict(parse_qsl(parts.query))
        try:
            timeout = float(query.get("timeout", 20))
        except ValueError:
            raise ImproperlyConfigured("DATABASE_URL: timeout must be a number of seconds") from None
        return _sqlite(unquote(parts.path) or ":memory:", timeout)
    if not parts.path.strip("/"):
        raise ImproperlyConfigured(
            "DATABASE_URL has no database name (expected postgres://user@host:port/name)"
        )
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": env_int("DJANGO_CONN_MAX_AGE", 60, minimum=0),
        "CONN_HEALTH_CHECKS": True,
    }


DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql", "sqlite"))
DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: the durable queue, the channel layer, the cache and shared rate limits ------------------------------
REDIS_URL = env_url("REDIS_URL", "CC_TELEGRAM_REDIS_URL", schemes=("redis", "rediss", "unix"))
# Every Redis key of the bridge starts with this (queue streams, rate buckets, locks); one Redis can serve
# several installations with different prefixes.
CC_TELEGRAM_REDIS_PREFIX = env_str("CC_TELEGRAM_REDIS_PREFIX", "cct")
# Seconds a claimed queue entry stays invisible to other workers. Shorter: a crashed worker's events are taken
# over sooner. It must outlast a stalled send (lease renewal covers waits on rate limits, every third of it).
CC_TELEGRAM_VISIBILITY_TIMEOUT = env_int("CC_TELEGRAM_VISIBILITY_TIMEOUT", 60, minimum=1, maximum=86_400)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cct",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # A receive blocks in BZPOPMIN for up to 5 s; redis-py's default socket timeout, also 5 s, would
                # cut it short and fail every idle consumer (the workers' control channel) every few seconds.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
                "prefix": f"{CC_TELEGRAM_REDIS_PREFIX}:channels",
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "cctelegram"}
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth, i18n, static ------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = CC_TELEGRAM_HOME / "static"

SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("CC_TELEGRAM_LOG_LEVEL", "INFO").upper()},
    # httpx logs every request URL at INFO, and the Bot API URL carries the token.
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # watchfiles logs every change it sees at INFO: thousands of lines an hour on a busy events folder.
        "watchfiles": {"level": "WARNING"},
    },
}
