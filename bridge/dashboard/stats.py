"""The dashboard's figures over the last hour, in 10-second buckets, from deliveries and worker samples.

A snapshot covers the whole hour (sent when a dashboard connects); later ones cover only the last minute, whose
buckets may still change, and the page replaces those buckets by their time. Synchronous: call it through
``database_sync_to_async``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from datetime import UTC, datetime

from django.db.models import Count, Q, Sum

from bridge.health import WORKER_STALE
from bridge.models import Delivery, Worker, WorkerSample

BUCKET_SECONDS = 10
WINDOW_SECONDS = 3600
TAIL_SECONDS = 60  # a delivery is recorded a moment after it is sent: recent buckets are read again
LATENCY_SUMMARY_SECONDS = 300
SUCCESS = (Delivery.Status.SENT, Delivery.Status.DIGESTED)
ERRORS = (Delivery.Status.FAILED, Delivery.Status.DEAD)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None for no values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return round(sorted_values[rank - 1], 2)


def _bucket(moment: datetime) -> int:
    return int(moment.timestamp()) // BUCKET_SECONDS * BUCKET_SECONDS


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def snapshot(*, tail: bool = False, now: float | None = None) -> dict:
    """``{"type": "stats", "bucket_seconds", "window_seconds", "partial", "buckets": [...], "summary": {...}}``.

    Each bucket: ``t`` (epoch start), ``sent``, ``failed``, ``p50``/``p99`` (ms, of the deliveries sent in it),
    ``error_rate`` (% of its outcomes that failed), ``queue_depth`` and ``memory_mb`` (summed over workers, from
    each one's last sample in the bucket), ``cache_hit_rate`` (%); a figure nobody measured is None.
    """
    now = time.time() if now is None else now
    last = int(now) // BUCKET_SECONDS * BUCKET_SECONDS
    first = last - (TAIL_SECONDS if tail else WINDOW_SECONDS - BUCKET_SECONDS)
    start = _dt(first)

    latencies: dict[int, list[float]] = defaultdict(list)
    sent: dict[int, int] = defaultdict(int)
    for sent_at, latency in Delivery.objects.filter(sent_at__gte=start, status__in=SUCCESS).values_list(
        "sent_at", "latency_ms"
    ):
        t = _bucket(sent_at)
        sent[t] += 1
        if latency is not None:
            latencies[t].append(latency)
    failed: dict[int, int] = defaultdict(int)
    for updated_at in Delivery.objects.filter(status__in=ERRORS, updated_at__gte=start).values_list(
        "updated_at", flat=True
    ):
        failed[_bucket(updated_at)] += 1
    # The last sample per worker and bucket (rows come in time order, so later ones overwrite).
    per_worker: dict[int, dict[str, tuple[int, float]]] = defaultdict(dict)
    cache: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for at, worker, depth, memory, hits, lookups in WorkerSample.objects.filter(at__gte=start).values_list(
        "at", "worker", "queue_depth", "memory_mb", "cache_hits", "cache_lookups"
    ):
        t = _bucket(at)
        per_worker[t][worker] = (depth, memory)
        cache[t][0] += hits
        cache[t][1] += lookups

    buckets = []
    for t in range(first, last + BUCKET_SECONDS, BUCKET_SECONDS):
        values = sorted(latencies.get(t, ()))
        done, errors = sent.get(t, 0), failed.get(t, 0)
        workers = per_worker.get(t)
        hits, lookups = cache.get(t, (0, 0))
        buckets.append(
            {
                "t": t,
                "sent": done,
                "failed": errors,
                "p50": percentile(values, 0.50),
                "p99": percentile(values, 0.99),
                "error_rate": round(100.0 * errors / (done + errors), 2) if done + errors else None,
                "queue_depth": sum(d for d, _ in workers.values()) if workers else None,
                "memory_mb": round(sum(m for _, m in workers.values()), 1) if workers else None,
                "cache_hit_rate": round(100.0 * hits / lookups, 2) if lookups else None,
            }
        )
    return {
        "type": "stats",
        "bucket_seconds": BUCKET_SECONDS,
        "window_seconds": WINDOW_SECONDS,
        "partial": tail,
        "buckets": buckets,
        "summary": summary(now),
    }


def summary(now: float) -> dict:
    """The figures of the tiles above the charts: the hour's totals and rates, and the workers now."""
    hour = _dt(now - WINDOW_SECONDS)
    counts = Delivery.objects.aggregate(
        sent=Count("pk", filter=Q(status__in=SUCCESS, sent_at__gte=hour)),
        failed=Count("pk", filter=Q(status__in=ERRORS, updated_at__gte=hour)),
    )
    recent = sorted(
        Delivery.objects.filter(
            status__in=SUCCESS, sent_at__gte=_dt(now - LATENCY_SUMMARY_SECONDS), latency_ms__isnull=False
        ).values_list("latency_ms", flat=True)
    )
    cache = WorkerSample.objects.filter(at__gte=hour).aggregate(
        hits=Sum("cache_hits"), lookups=Sum("cache_lookups")
    )
    workers = Worker.objects.filter(heartbeat_at__gte=_dt(now) - WORKER_STALE).aggregate(
        count=Count("pk"), depth=Sum("queue_depth"), memory=Sum("memory_mb")
    )
    sent, failed = counts["sent"], counts["failed"]
    return {
        "sent": sent,
        "failed": failed,
        "error_rate": round(100.0 * failed / (sent + failed), 2) if sent + failed else 0.0,
        "p50": percentile(recent, 0.50),
        "p99": percentile(recent, 0.99),
        "cache_hit_rate": round(100.0 * cache["hits"] / cache["lookups"], 2) if cache["lookups"] else None,
        "workers": workers["count"],
        "queue_depth": workers["depth"] or 0,
        "memory_mb": round(workers["memory"] or 0.0, 1),
    }
