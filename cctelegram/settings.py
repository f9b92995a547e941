"""Django settings, read from the environment only (see .env.example for every variable).

Values an operator tunes while the bridge runs (compression, cache, rates, retries, ...) are not here: they live in
the database as BridgeSettings, so that changing them needs no restart.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

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
TELEGRAM_WEBHOOK_SECRET = env_secret("TELEGRAM_WEBHOOK_SECRET")
# Port of the web process (`manage.py up`, daphne): the sandbox's Bot API lives there.
CC_TELEGRAM_PORT = env_int("CC_TELEGRAM_PORT", 8000, minimum=1, maximum=65535)
# No token: the built-in Bot API emulator stands in for Telegram, with a chat page at /sandbox/.
CC_TELEGRAM_SANDBOX = not TELEGRAM_BOT_TOKEN
# The emulator's own token: it is a local stand-in, so a fixed, public value is no secret.
CC_TELEGRAM_SANDBOX_TOKEN = "1000000001:CCTelegramSandbox-localOnly"
TELEGRAM_API_BASE_URL = env_str(
    "TELEGRAM_API_BASE_URL",
    f"http://127.0.0.1:{CC_TELEGRAM_PORT}/sandbox/bot"
    if CC_TELEGRAM_SANDBOX
    else "https://api.telegram.org/bot",
)
# Connections to the Bot API: one send in flight per connection.
CC_TELEGRAM_POOL_SIZE = env_int("CC_TELEGRAM_POOL_SIZE", 16, minimum=1, maximum=512)
CC_TELEGRAM_MESSAGE_STYLE = env_str("CC_TELEGRAM_MESSAGE_STYLE", "concise", choices=("concise", "detailed"))
CC_TELEGRAM_TIMEZONE = env_timezone("CC_TELEGRAM_TIMEZONE", "UTC")
CC_TELEGRAM_METRICS_TOKEN = env_secret("CC_TELEGRAM_METRICS_TOKEN")
MCP_API_KEYS = env_list("MCP_API_KEYS")

# --- Django ------------------------------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    # A per-installation key kept beside the database: sessions survive restarts without any set-up.
    _key_file = CC_TELEGRAM_HOME / "secret_key"
    if not _key_file.exists():
        from django.core.management.utils import get_random_secret_key

        _key_file.write_text(get_random_secret_key())
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()
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


def _database(url: str) -> dict:
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": CC_TELEGRAM_HOME / "cctelegram.sqlite3",
            # WAL lets the web UI read while the bridge writes; a busy timeout instead of "database is locked".
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": CC_TELEGRAM_HOME / "test_cctelegram.sqlite3"},
        }
    parts = urlsplit(url)
    if parts.scheme in ("sqlite", "sqlite3"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parts.path) or ":memory:"}
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
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "cct:channels", "capacity": 1000, "expiry": 30},
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
