"""The bridge's own Prometheus metrics, all named cc_telegram_*.

Label values are bounded: event types outside the catalog are counted as "unknown" so an agent inventing types
cannot grow the number of series without limit.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from bridge.events.catalog import CATALOG

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)


def type_label(event_type: str) -> str:
    return event_type if event_type in CATALOG else "unknown"


EVENTS_RECEIVED = Counter("cc_telegram_events_received_total", "Events accepted into the queue", ["type"])
EVENTS_DUPLICATE = Counter("cc_telegram_events_duplicate_total", "Events recognised as already received")
EVENTS_QUARANTINED = Counter(
    "cc_telegram_events_quarantined_total", "Event files moved to events/failed/", ["reason"]
)
EVENTS_PROCESSED = Counter(
    "cc_telegram_events_processed_total", "Events fully handled by the sender", ["type"]
)
MESSAGES = Counter("cc_telegram_messages_total", "Telegram sends by outcome", ["outcome"])
STAGE_SECONDS = Histogram(
    "cc_telegram_stage_seconds", "Time spent per pipeline stage", ["stage"], buckets=_STAGE_BUCKETS
)
END_TO_END_SECONDS = Histogram(
    "cc_telegram_end_to_end_seconds",
    "From an event's arrival to Telegram's answer",
    buckets=_LATENCY_BUCKETS,
)
QUEUE_WAIT_SECONDS = Histogram(
    "cc_telegram_queue_wait_seconds", "From enqueue to claim", buckets=_LATENCY_BUCKETS
)
QUEUE_DEPTH = Gauge("cc_telegram_queue_depth", "Entries waiting per priority lane", ["lane"])
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "cc_telegram_rate_limit_wait_seconds", "Waits imposed by the send rate limits", buckets=_LATENCY_BUCKETS
)
TELEGRAM_429 = Counter("cc_telegram_429_total", "Too Many Requests answers from Telegram")
BREAKER_STATE = Gauge("cc_telegram_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open")
CACHE_REQUESTS = Counter(
    "cc_telegram_cache_requests_total", "Tiered cache look-ups by tier (l1, l2) and result (hit, miss)", ["tier", "result"]
)
SETTINGS_VERSION = Gauge("cc_telegram_settings_version", "BridgeSettings version applied by this process")


def exposition() -> tuple[bytes, str]:
    """The text Prometheus scrapes: this process's registry (Django's metrics and the bridge's own)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
