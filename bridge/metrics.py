"""The bridge's own Prometheus metrics, all named cc_telegram_*, and their exposition.

Label values are bounded: event types outside the catalog are counted as "unknown", so an agent inventing types
cannot grow the number of series without limit.

Hot path: the children of labelled metrics are bound once, here (``RECEIVED[event.type]``, ``SENT``,
``PARSE_SECONDS``), so an event costs a dict look-up and an increment, not a ``labels()`` call with its lock.

Several processes on one machine (the web process, ``run_bridge`` workers): with CC_TELEGRAM_METRICS_DIR set,
settings.py points prometheus-client's multiprocess mode at that folder before the library is imported; every
process then writes its values to files there and any of them exposes the sum. Gauges say how their processes
combine (``multiprocess_mode``): a worker's own figures keep a ``pid`` label, shared ones (queue depth) take the
maximum, the settings version the minimum (a worker lagging behind shows). Live gauges of a process that exited
are dropped (``process_exited``, ``forget_dead_processes``); its counters stay in the sums, as counters must.

CC_TELEGRAM_METRICS=off turns every metric here into a no-op: how the bench measures their cost.
"""

from __future__ import annotations

import asyncio
import bisect
import hmac
import os
import re
import threading
import time
from collections import deque
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psutil
from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from bridge.events.catalog import CATALOG
from bridge.events.priority import Priority
from bridge.snapshot import Snapshot

# Read once, at import: the metrics below are process-wide singletons, registered when this module loads.
ENABLED: bool = getattr(settings, "CC_TELEGRAM_METRICS", True)

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5)
_RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class _Off:
    """Stands in for every metric and child when metrics are off: each call does nothing."""

    def labels(self, *args, **kwargs) -> _Off:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


_OFF = _Off()


class _KeptChildren:
    """A labelled metric whose children are kept once made, so ``labels(...)`` on a hot path (a cache look-up, a
    quarantine) is a dict look-up: prometheus-client's own validates the values and takes the metric's lock at
    every call, several microseconds each. Label values are bounded here, so the dict is too."""

    def __init__(self, metric) -> None:
        self._metric = metric
        self._children: dict[tuple, object] = {}

    def labels(self, *values: str, **named: str):
        key = (values, tuple(named.items()))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(*values, **named)
        return child

    def __getattr__(self, name: str):
        return getattr(self._metric, name)


def _made(metric, labels: tuple[str, ...]):
    if not ENABLED:
        return _OFF
    return _KeptChildren(metric()) if labels else metric()


def _counter(name: str, documentation: str, labels: tuple[str, ...] = ()):
    return _made(lambda: Counter(name, documentation, labels), labels)


def _histogram(name: str, documentation: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()):
    return _made(lambda: Histogram(name, documentation, labels, buckets=buckets), labels)


def _gauge(name: str, documentation: str, mode: str, labels: tuple[str, ...] = ()):
    return _made(lambda: Gauge(name, documentation, labels, multiprocess_mode=mode), labels)


def type_label(event_type: str) -> str:
    return event_type if event_type in CATALOG else "unknown"


class _ByType:
    """The children of a metric labelled by event type, bound once for the catalog's types and "unknown"."""

    def __init__(self, metric) -> None:
        self._children = {name: metric.labels(type=name) for name in (*CATALOG, "unknown")}
        self._unknown = self._children["unknown"]

    def __getitem__(self, event_type: str):
        return self._children.get(event_type, self._unknown)


# --- events ------------------------------------------------------------------------------------------------------
EVENTS_RECEIVED = _counter("cc_telegram_events_received_total", "Events accepted into the queue", ("type",))
EVENTS_DUPLICATE = _counter("cc_telegram_events_duplicate_total", "Events recognised as already received")
EVENTS_QUARANTINED = _counter(
    "cc_telegram_events_quarantined_total", "Event files moved to events/failed/, by reason", ("reason",)
)
EVENTS_PROCESSED = _counter(
    "cc_telegram_events_processed_total", "Events fully handled by the sender", ("type",)
)
RECEIVED = _ByType(EVENTS_RECEIVED)
PROCESSED = _ByType(EVENTS_PROCESSED)

# --- sending -----------------------------------------------------------------------------------------------------
MESSAGES = _counter(
    "cc_telegram_messages_total", "Deliveries by outcome: sent, digested, retry, dead", ("outcome",)
)
SENT, DIGESTED, RETRIED, DEAD = (MESSAGES.labels(outcome=o) for o in ("sent", "digested", "retry", "dead"))
RATE_LIMIT_WAIT_SECONDS = _histogram(
    "cc_telegram_rate_limit_wait_seconds", "Waits imposed by the send rate limits", _LATENCY_BUCKETS
)
TELEGRAM_429 = _counter("cc_telegram_429_total", "Too Many Requests answers from Telegram")
BREAKER_STATE = _gauge(
    "cc_telegram_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open (worst process)", "livemax"
)

# --- latency -----------------------------------------------------------------------------------------------------
STAGE_SECONDS = _histogram(
    "cc_telegram_stage_seconds",
    "Time spent per pipeline stage: parse, render, send",
    _STAGE_BUCKETS,
    ("stage",),
)
PARSE_SECONDS, RENDER_SECONDS, SEND_SECONDS = (
    STAGE_SECONDS.labels(stage=s) for s in ("parse", "render", "send")
)
QUEUE_WAIT_SECONDS = _histogram(
    "cc_telegram_queue_wait_seconds", "From enqueue to first claim", _LATENCY_BUCKETS
)
END_TO_END_SECONDS = _histogram(
    "cc_telegram_end_to_end_seconds", "From an event's arrival to Telegram's answer", _LATENCY_BUCKETS
)

# --- queue, cache, compression -----------------------------------------------------------------------------------
QUEUE_DEPTH = _gauge(
    "cc_telegram_queue_depth",
    "Entries not yet handled, per priority (one shared queue)",
    "livemax",
    ("priority",),
)
_PRIORITY_NAMES = {p.value: p.label for p in Priority}
CACHE_REQUESTS = _counter(
    "cc_telegram_cache_requests_total",
    "Tiered cache look-ups by tier (l1, l2) and result (hit, miss)",
    ("tier", "result"),
)
COMPRESSION_SECONDS = _histogram(
    "cc_telegram_compression_seconds", "zstd time per payload over the threshold", _STAGE_BUCKETS
)
COMPRESSION_RATIO = _histogram(
    "cc_telegram_compression_ratio",
    "Stored size over original size per payload over the threshold",
    _RATIO_BUCKETS,
)
COMPRESSION_BYTES = _counter(
    "cc_telegram_compression_bytes_total",
    "Bytes of payloads over the threshold, before and after",
    ("stage",),
)
COMPRESSION_IN, COMPRESSION_OUT = COMPRESSION_BYTES.labels(stage="in"), COMPRESSION_BYTES.labels(stage="out")

# --- the process -------------------------------------------------------------------------------------------------
RESIDENT_MEMORY_BYTES = _gauge(
    "cc_telegram_process_resident_memory_bytes", "Resident memory of the process", "liveall"
)
CPU_PERCENT = _gauge(
    "cc_telegram_process_cpu_percent",
    "CPU used by the process since its previous sample (100 = one core)",
    "liveall",
)
LOOP_LAG_SECONDS = _histogram(
    "cc_telegram_event_loop_lag_seconds", "How late the event loop woke from a 0.1 s sleep", _LAG_BUCKETS
)
LOOP_LAG_MAX_SECONDS = _gauge(
    "cc_telegram_event_loop_lag_max_seconds", "Worst event-loop lag over the last second", "livemax"
)
SETTINGS_VERSION = _gauge(
    "cc_telegram_settings_version", "BridgeSettings version applied (lowest among live processes)", "livemin"
)
TUNER_CHANGES = _counter(
    "cc_telegram_tuner_changes_total", "Knob changes made by the auto-tuner", ("knob", "direction")
)


# --- what the auto-tuner reads back --------------------------------------------------------------------------------
class Recent:
    """This process's latest end-to-end latencies and its 429 count, kept whether or not metrics are exported.

    A histogram cannot give the tuner a p99 of the last ten seconds: its buckets are coarse and it never forgets.
    The window is bounded (``size`` deliveries), so a flood costs memory only up to that.
    """

    def __init__(self, size: int = 4096) -> None:
        self._latencies: deque[tuple[float, float]] = deque(maxlen=size)  # (monotonic time, seconds)
        self.throttled = 0

    def delivered(self, seconds: float) -> None:
        self._latencies.append((time.monotonic(), seconds))

    def p99(self, since: float) -> float | None:
        """The 99th percentile (seconds) of latencies recorded at or after monotonic ``since``; None if none."""
        times = [at for at, _ in self._latencies]
        start = bisect.bisect_left(times, since)
        window = sorted(seconds for _, seconds in list(self._latencies)[start:])
        if not window:
            return None
        return window[max(0, -(-len(window) * 99 // 100) - 1)]


RECENT = Recent()


def delivered(seconds: float) -> None:
    """One message reached Telegram ``seconds`` after its event arrived."""
    END_TO_END_SECONDS.observe(seconds)
    RECENT.delivered(seconds)


def throttled() -> None:
    """Telegram answered 429 Too Many Requests."""
    TELEGRAM_429.inc()
    RECENT.throttled += 1


def set_queue_depth(depth: dict[int, int]) -> None:
    for lane, count in depth.items():
        QUEUE_DEPTH.labels(priority=_PRIORITY_NAMES.get(lane, str(lane))).set(count)


_process = psutil.Process()


def sample_process() -> tuple[float, float]:
    """Set the process gauges; returns (resident memory in MB, CPU percent since the previous call)."""
    rss = _process.memory_info().rss
    cpu = _process.cpu_percent(interval=None)
    RESIDENT_MEMORY_BYTES.set(rss)
    CPU_PERCENT.set(cpu)
    return rss / 1_048_576, cpu


# --- exposition --------------------------------------------------------------------------------------------------
def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


_registry: CollectorRegistry | None = None
_forgotten_at = 0.0
_FORGET_EVERY = 60.0  # seconds between sweeps for the files of dead processes
_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def registry() -> CollectorRegistry:
    """This process's registry, or in multiprocess mode one that reads every process's files at each scrape."""
    global _registry
    path = multiprocess_dir()
    if path is None:
        return REGISTRY
    if _registry is None:
        _registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(_registry, path=path)
    return _registry


def exposition() -> tuple[bytes, str]:
    """The text Prometheus scrapes: Django's metrics and the bridge's own, of every process sharing the folder."""
    global _forgotten_at
    sample_process()
    if multiprocess_dir() and time.monotonic() - _forgotten_at > _FORGET_EVERY:
        _forgotten_at = time.monotonic()
        forget_dead_processes()
    return generate_latest(registry()), CONTENT_TYPE_LATEST


async def _render() -> tuple[bytes, str]:
    """``exposition()`` on a worker thread: rendering (and in multiprocess mode reading every process's files)
    takes milliseconds the event loop must not lose."""
    return await asyncio.to_thread(exposition)


EXPOSITION_MAX_AGE_SECONDS = 1.0
"""How old a rendering /metrics may serve: Prometheus scrapes every few seconds, and one rendering a second is all a
flood of scrapes then costs."""
EXPOSITION: Snapshot[tuple[bytes, str]] = Snapshot(_render, EXPOSITION_MAX_AGE_SECONDS)


def authorized(header: str) -> bool:
    """Whether an Authorization header may read the metrics (always, when no CC_TELEGRAM_METRICS_TOKEN is set)."""
    token = settings.CC_TELEGRAM_METRICS_TOKEN
    return not token or hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


def process_exited(pid: int | None = None) -> None:
    """Drop the live gauges of a process (this one by default) from the shared folder; counters stay summed."""
    path = multiprocess_dir()
    if path:
        multiprocess.mark_process_dead(pid or os.getpid(), path)


def forget_dead_processes() -> None:
    """Drop the live gauges of processes that are gone without saying so (killed, crashed)."""
    path = multiprocess_dir()
    if not path:
        return
    pids = {int(m.group(1)) for name in os.listdir(path) if (m := _LIVE_FILE.match(name))}
    for pid in pids:
        if not psutil.pid_exists(pid):
            multiprocess.mark_process_dead(pid, path)


# --- a worker's own scrape port ----------------------------------------------------------------------------------
class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:
        """Prometheus scrapes every few seconds: no access log line for each."""


def _metrics_app(environ, start_response):
    if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"metrics are at /metrics\n"]
    if not authorized(environ.get("HTTP_AUTHORIZATION", "")):
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="metrics"')],
        )
        return [b"metrics need a bearer token\n"]
    body, content_type = exposition()
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def serve(port: int, host: str = "127.0.0.1") -> WSGIServer:
    """Serve /metrics on ``host:port`` from a daemon thread (the bearer token applies as on the web process).

    For workers on other machines, which share no folder with the web process. Returns the server, whose
    ``shutdown()`` stops it; raises OSError when the port is taken.
    """
    server = make_server(host, port, _metrics_app, server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
