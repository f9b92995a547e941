"""System checks with stable ids: what is misconfigured, said before anything runs."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_allowed_users(app_configs=None, **kwargs):
    if settings.TELEGRAM_BOT_TOKEN and not settings.TELEGRAM_ALLOWED_USERS:
        return [
            Warning(
                "TELEGRAM_BOT_TOKEN is set but TELEGRAM_ALLOWED_USERS is empty: nothing will be sent and nobody heard.",
                hint="Set TELEGRAM_ALLOWED_USERS to your Telegram user id (ask @userinfobot), or add Recipients in the admin.",
                id="cctelegram.W001",
            )
        ]
    return []


@register()
def check_folders_writable(app_configs=None, **kwargs):
    problems = []
    for name, path in (
        ("CC_TELEGRAM_EVENTS_DIR", settings.CC_TELEGRAM_EVENTS_DIR),
        ("CC_TELEGRAM_RESPONSES_DIR", settings.CC_TELEGRAM_RESPONSES_DIR),
    ):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problems.append(Error(f"{name} ({path}) cannot be created: {exc}", id="cctelegram.E001"))
            continue
        if not os.access(path, os.W_OK | os.X_OK):
            problems.append(
                Error(
                    f"{name} ({path}) is not writable by this process.",
                    hint="Fix its permissions or point the variable at a writable folder.",
                    id="cctelegram.E002",
                )
            )
    return problems


@register(deploy=False)
def check_redis_reachable(app_configs=None, **kwargs):
    if not settings.REDIS_URL:
        return []
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        return [
            Error(
                f"REDIS_URL is set but Redis does not answer: {exc.__class__.__name__}: {exc}",
                hint="Start Redis, fix REDIS_URL, or unset it to use the embedded database queue.",
                id="cctelegram.E003",
            )
        ]
    return []
