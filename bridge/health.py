"""Health: the figures /health reports, computed from the database, the workers' heartbeats and this process.

``check()`` and ``readiness()`` compute the figures (blocking: database queries); the web endpoints read them through
``REPORT`` and ``READY``, snapshots that compute them at most once a second on Django's database thread and share
each computation between concurrent requests, so a monitor polling hard costs a few queries a second, not a few per
request, and never blocks the event loop.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import cache

import psutil
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from bridge.models import Delivery, Event, PollerState, Worker
from bridge.snapshot import Snapshot

STARTED = time.time()
# A worker that has not written its heartbeat for this long is presumed gone (it beats every 2 s).
WORKER_STALE = timedelta(seconds=30)
ERROR_WINDOW = timedelta(hours=1)
WARNING_ERROR_RATE, CRITICAL_ERROR_RATE = 5.0, 50.0
WARNING_QUEUE_DEPTH = 1000
# A poller error older than this, or followed by a good poll, is history rather than a problem.
POLLER_ERROR_FRESH = timedelta(minutes=2)
# How old a report the endpoints may serve: monitors poll every few seconds, load balancers at most a few times a
# second; a second keeps the figures current for both while a flood of probes costs one computation a second.
MAX_AGE_SECONDS = 1.0

_process = psutil.Process()


@dataclass
class Health:
    status: str
    uptime_seconds: float
    memory_usage_mb: float
    cpu_usage_percent: float
    events_processed: int
    error_rate_percent: float
    queue_depth: int
    last_delivery: str | None
    workers: int
    problems: list[str]
    poller: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def database_ok() -> bool:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        # A broken connection stays broken until closed: close it, so the next check connects afresh once the
        # database is back rather than reporting it down for ever.
        connection.close_if_unusable_or_obsolete()
        return False


@cache
def _redis_client(url: str):
    """One client (and connection pool) per URL: a ping then reuses its connection instead of opening one."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def redis_ok() -> bool | None:
    """None when no Redis is configured."""
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        return bool(_redis_client(settings.REDIS_URL).ping())
    except (redis.RedisError, OSError):
        return False


def live_workers() -> int:
    return Worker.objects.filter(heartbeat_at__gte=timezone.now() - WORKER_STALE).count()


def readiness() -> dict[str, bool]:
    """Ready to take work: the database, Redis when configured, and a bridge worker that reported recently."""
    checks = {"database": database_ok()}
    redis = redis_ok()
    if redis is not None:
        checks["redis"] = redis
    checks["worker"] = checks["database"] and live_workers() > 0
    return checks


def poller_status() -> dict | None:
    """Who polls Telegram for updates and how that goes; None before any worker polled.

    ``problem`` is set while the latest attempt failed recently: a 409 conflict (another program polls the bot's
    token, or a webhook is set) or Telegram unreachable.
    """
    state = PollerState.objects.order_by("-updated_at").first()
    if state is None:
        return None
    failing = (
        bool(state.last_error)
        and state.last_error_at is not None
        and timezone.now() - state.last_error_at < POLLER_ERROR_FRESH
        and (state.last_poll_at is None or state.last_error_at > state.last_poll_at)
    )
    return {
        "bot_id": state.bot_id,
        "holder": state.holder,
        "next_offset": state.next_offset,
        "last_poll_at": state.last_poll_at.isoformat() if state.last_poll_at else None,
        "last_error": state.last_error,
        "last_error_at": state.last_error_at.isoformat() if state.last_error_at else None,
        "problem": state.last_error if failing else None,
    }


def check() -> Health:
    """The whole picture; status is critical when the database is unreachable or most sends fail."""
    memory = _process.memory_info().rss / 1_048_576
    cpu = _process.cpu_percent(interval=None)
    base = {"uptime_seconds": round(time.time() - STARTED, 1), "memory_usage_mb": round(memory, 1)}
    if not database_ok():
        return Health(
            status="critical",
            cpu_usage_percent=cpu,
            events_processed=0,
            error_rate_percent=0.0,
            queue_depth=0,
            last_delivery=None,
            workers=0,
            problems=["database unreachable"],
            **base,
        )
    since = timezone.now() - ERROR_WINDOW
    recent = Delivery.objects.filter(updated_at__gte=since).aggregate(
        total=Count("pk", filter=~Q(status=Delivery.Status.SUPPRESSED)),
        failed=Count("pk", filter=Q(status__in=(Delivery.Status.DEAD, Delivery.Status.FAILED))),
    )
    total, failed = recent["total"] or 0, recent["failed"] or 0
    error_rate = round(100.0 * failed / total, 2) if total else 0.0
    alive = Worker.objects.filter(heartbeat_at__gte=timezone.now() - WORKER_STALE)
    workers = alive.count()
    depth = alive.aggregate(depth=Sum("queue_depth"))["depth"] or 0
    last = Delivery.objects.filter(status=Delivery.Status.SENT).aggregate(last=Max("sent_at"))["last"]
    problems = []
    if workers == 0:
        problems.append("no bridge worker has reported in the last 30 s")
    if error_rate >= WARNING_ERROR_RATE:
        problems.append(f"{error_rate}% of deliveries failed in the last hour")
    if depth > WARNING_QUEUE_DEPTH:
        problems.append(f"{depth} events waiting in the queue")
    redis_down = redis_ok() is False
    if redis_down:
        problems.append("Redis unreachable")
    poller = poller_status()
    if poller is not None and poller["problem"]:
        problems.append(f"receiving updates: {poller['problem']}")
    status = "critical" if error_rate >= CRITICAL_ERROR_RATE or redis_down else "healthy"
    if status == "healthy" and problems:
        status = "warning"
    return Health(
        status=status,
        cpu_usage_percent=cpu,
        events_processed=Event.objects.filter(status__in=(Event.Status.DONE, Event.Status.FAILED)).count(),
        error_rate_percent=error_rate,
        queue_depth=depth,
        last_delivery=last.isoformat() if last else None,
        workers=workers,
        problems=problems,
        poller=poller,
        **base,
    )


# Computed on Django's database thread (connections opened and closed as around a request), never on the loop.
REPORT: Snapshot[Health] = Snapshot(database_sync_to_async(check), MAX_AGE_SECONDS)
READY: Snapshot[dict[str, bool]] = Snapshot(database_sync_to_async(readiness), MAX_AGE_SECONDS)
