"""Metrics as Prometheus scrapes them: exact counts after a known run of the real pipeline against the emulator,
the gauges a worker keeps, several real processes summed by one /metrics, a worker's own port, the off switch,
and CPU-heavy work kept off the event loop (with the loop lag measured)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from prometheus_client.parser import text_string_to_metric_families

from bridge import metrics
from bridge.compression import Compressor
from bridge.events.parse import parse_file
from bridge.events.schema import Event
from bridge.models import BridgeSettings, Recipient
from bridge.pipeline import Pipeline
from bridge.telegram import format as telegram_format
from bridge.telegram.send import build_sender
from bridge.tuning.telemetry import LoopLagMonitor
from tests.emulator_fixtures import TEST_TOKEN
from tests.processes import child_database_url

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parent.parent
ALICE = 111111


@pytest.fixture(autouse=True)
def fresh_rendering(monkeypatch):
    """Every scrape renders the registry anew: the tests count exactly what a run between two scrapes added (the
    web endpoints otherwise serve a rendering up to a second old)."""
    monkeypatch.setattr(metrics.EXPOSITION, "max_age", 0)


# --- scraping ------------------------------------------------------------------------------------------------------
def parse(text: str) -> dict[tuple[str, frozenset], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: dict, name: str) -> list[dict]:
    return [dict(labels) for (sample_name, labels) in samples if sample_name == name]


async def scrape(async_client) -> dict:
    response = await async_client.get("/metrics")
    assert response.status_code == 200
    return parse(response.content.decode())


# --- the world of one test -----------------------------------------------------------------------------------------
@pytest.fixture
def world(folders, emulator):
    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    Recipient.objects.create(chat_id=ALICE, display_name="alice")
    tune(rate_per_chat_per_second=100, rate_global_per_second=1000, digest_threshold=1000)
    return folders


def tune(**changes) -> None:
    current = BridgeSettings.load()
    for name, new in changes.items():
        setattr(current, name, new)
    current.full_clean()
    current.save()


def drop(events_dir: Path, body: dict, name: str | None = None) -> None:
    path = events_dir / (name or f"{uuid.uuid4().hex}.json")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)


async def run_pipeline() -> None:
    pipeline = Pipeline(sender_factory=build_sender)
    try:
        await pipeline.run_once()
    finally:
        await pipeline.queue.close()


# --- one process -----------------------------------------------------------------------------------------------------
async def test_a_known_run_is_counted_exactly_by_type_outcome_and_stage(world, async_client):
    events = world.CC_TELEGRAM_EVENTS_DIR
    run = uuid.uuid4().hex[
        :8
    ]  # titles of this test's own: content-derived event ids never repeat across runs
    drop(events, {"type": "info_notification", "title": f"a {run}"})
    drop(events, {"type": "info_notification", "title": f"b {run}", "description": "x" * 20_000})
    drop(events, {"type": "info_notification", "title": f"c {run}", "event_id": f"same-{run}"})
    drop(events, {"type": "info_notification", "title": f"c again {run}", "event_id": f"same-{run}"})
    drop(events, {"type": "task_completion", "title": f"d {run}"})
    drop(events, {"type": "task_completion", "title": f"e {run}"})
    drop(events, {"type": "info_notification"})  # no title: quarantined
    before = await scrape(async_client)

    await run_pipeline()

    after = await scrape(async_client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("cc_telegram_events_received_total", type="info_notification") == 3
    assert delta("cc_telegram_events_received_total", type="task_completion") == 2
    assert delta("cc_telegram_events_duplicate_total") == 1
    assert delta("cc_telegram_events_quarantined_total", reason="missing_field") == 1
    assert delta("cc_telegram_events_processed_total", type="info_notification") == 3
    assert delta("cc_telegram_events_processed_total", type="task_completion") == 2
    assert delta("cc_telegram_messages_total", outcome="sent") == 5
    assert delta("cc_telegram_messages_total", outcome="dead") == 0
    assert delta("cc_telegram_end_to_end_seconds_count") == 5
    assert delta("cc_telegram_queue_wait_seconds_count") == 5
    assert delta("cc_telegram_stage_seconds_count", stage="parse") == 7
    assert delta("cc_telegram_stage_seconds_count", stage="render") == 5
    assert delta("cc_telegram_stage_seconds_count", stage="send") == 5
    # Only the event with a 20 KB description is over the 4 KB compression threshold.
    assert delta("cc_telegram_compression_seconds_count") == 1
    assert delta("cc_telegram_compression_ratio_count") == 1
    assert (
        0
        < delta("cc_telegram_compression_bytes_total", stage="out")
        < delta("cc_telegram_compression_bytes_total", stage="in")
    )
    assert delta("cc_telegram_429_total") == 0


async def test_429s_are_counted_for_prometheus_and_for_the_tuner(world, async_client, emulator):
    await asyncio.to_thread(
        httpx.post,
        f"{emulator.control_url}/faults",
        json={"method": "sendMessage", "status": 429, "retry_after": 1, "fail_next": 1},
    )
    drop(world.CC_TELEGRAM_EVENTS_DIR, {"type": "info_notification", "title": f"flood {uuid.uuid4()}"})
    throttled_before = metrics.RECENT.throttled
    before = await scrape(async_client)

    await run_pipeline()

    after = await scrape(async_client)
    assert value(after, "cc_telegram_429_total") - value(before, "cc_telegram_429_total") == 1
    assert metrics.RECENT.throttled - throttled_before == 1  # what the tuner reads
    assert (
        value(after, "cc_telegram_messages_total", outcome="sent")
        - value(before, "cc_telegram_messages_total", outcome="sent")
        == 1
    )


async def test_waits_for_the_send_rate_limit_are_observed(world, async_client):
    await sync_to_async(tune)(rate_per_chat_per_second=4)
    for i in range(4):
        drop(
            world.CC_TELEGRAM_EVENTS_DIR, {"type": "info_notification", "title": f"paced {i} {uuid.uuid4()}"}
        )
    before = await scrape(async_client)

    await run_pipeline()

    after = await scrape(async_client)
    waits, waited = "cc_telegram_rate_limit_wait_seconds_count", "cc_telegram_rate_limit_wait_seconds_sum"
    assert value(after, waits) - value(before, waits) >= 1
    assert value(after, waited) - value(before, waited) > 0


async def test_every_metric_of_the_issue_is_exposed_with_its_labels(async_client):
    samples = await scrape(async_client)
    names = {name for name, _ in samples}
    for name in (
        "cc_telegram_events_received_total",
        "cc_telegram_events_duplicate_total",
        "cc_telegram_events_quarantined_total",
        "cc_telegram_events_processed_total",
        "cc_telegram_messages_total",
        "cc_telegram_end_to_end_seconds_bucket",
        "cc_telegram_stage_seconds_bucket",
        "cc_telegram_queue_wait_seconds_bucket",
        "cc_telegram_rate_limit_wait_seconds_bucket",
        "cc_telegram_429_total",
        "cc_telegram_breaker_state",
        "cc_telegram_compression_seconds_bucket",
        "cc_telegram_compression_ratio_bucket",
        "cc_telegram_process_resident_memory_bytes",
        "cc_telegram_process_cpu_percent",
        "cc_telegram_event_loop_lag_seconds_bucket",
        "cc_telegram_event_loop_lag_max_seconds",
        "cc_telegram_settings_version",
        "django_http_requests_total_by_method_total",
    ):
        assert name in names, name
    assert {s["type"] for s in series(samples, "cc_telegram_events_received_total")} >= {
        "task_completion",
        "approval_request",
        "unknown",
    }
    assert {s["outcome"] for s in series(samples, "cc_telegram_messages_total")} == {
        "sent",
        "digested",
        "retry",
        "dead",
    }
    assert {s["stage"] for s in series(samples, "cc_telegram_stage_seconds_count")} >= {
        "parse",
        "render",
        "send",
    }
    assert value(samples, "cc_telegram_process_resident_memory_bytes") > 10_000_000


def test_cache_lookups_are_counted_per_tier_and_result(client):
    metrics.CACHE_REQUESTS.labels(tier="l1", result="hit").inc()
    metrics.CACHE_REQUESTS.labels(tier="l2", result="miss").inc()
    samples = parse(client.get("/metrics").content.decode())
    assert value(samples, "cc_telegram_cache_requests_total", tier="l1", result="hit") >= 1
    assert value(samples, "cc_telegram_cache_requests_total", tier="l2", result="miss") >= 1


def test_an_unknown_event_type_is_counted_as_unknown():
    assert metrics.RECEIVED["made_up_type"] is metrics.RECEIVED["another_invented_one"]
    assert metrics.RECEIVED["task_completion"] is not metrics.RECEIVED["made_up_type"]


def test_the_tuners_p99_covers_only_recent_latencies():
    recent = metrics.Recent()
    for ms in range(1, 101):
        recent.delivered(ms / 1000)
    assert recent.p99(since=0) == 0.099
    assert recent.p99(since=time.monotonic() + 1) is None


async def test_a_running_worker_reports_queue_depth_per_priority_version_memory_and_loop_lag(
    folders, async_client
):
    from bridge.worker import WorkerHost

    events = folders.CC_TELEGRAM_EVENTS_DIR
    drop(events, {"type": "info_notification", "title": f"waits {uuid.uuid4()}"})
    drop(events, {"type": "info_notification", "title": f"waits too {uuid.uuid4()}"})
    drop(events, {"type": "build_failed", "title": f"urgent-ish {uuid.uuid4()}"})
    lag_before = value(await scrape(async_client), "cc_telegram_event_loop_lag_seconds_count")
    host = WorkerHost(Pipeline(events_dir=events))  # ingest only: entries stay queued
    await host.start()
    try:
        deadline = time.monotonic() + 15
        while True:
            samples = await scrape(async_client)
            # The first heartbeat may report the depth before the lag monitor's first 0.1 s sleep is over.
            if (
                value(samples, "cc_telegram_queue_depth", priority="normal") == 2
                and value(samples, "cc_telegram_event_loop_lag_seconds_count") > lag_before
            ):
                break
            assert time.monotonic() < deadline, "the heartbeat never reported the queue depth and loop lag"
            await asyncio.sleep(0.2)
    finally:
        await host.stop()
    version = (await sync_to_async(BridgeSettings.load)()).version
    assert value(samples, "cc_telegram_queue_depth", priority="high") == 1
    assert value(samples, "cc_telegram_settings_version") == version
    assert value(samples, "cc_telegram_process_resident_memory_bytes") > 10_000_000
    assert value(samples, "cc_telegram_event_loop_lag_seconds_count") > lag_before


async def test_the_loop_lag_monitor_sees_a_blocked_loop():
    monitor = LoopLagMonitor(interval=0.01)
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(0.05)
    time.sleep(0.1)  # noqa: ASYNC251 - the stall under test, as a CPU-heavy call on the loop would cause
    await asyncio.sleep(0.05)
    task.cancel()
    assert monitor.worst >= 0.08


async def test_a_1mb_event_is_parsed_serialized_compressed_and_rendered_off_the_event_loop(
    world, emulator, monkeypatch
):
    """The heavy steps of a 1 MB event run on worker threads, so the loop stays free for other events."""
    heavy: dict[str, list[bool]] = {"parse": [], "serialize": [], "compress": [], "render": []}
    big = 256 * 1024

    def on_loop() -> bool:
        return threading.current_thread() is threading.main_thread()

    def parse_spy(path, **kwargs):
        event = parse_file(path, **kwargs)
        if len(event.data.get("log", "")) > big:
            heavy["parse"].append(on_loop())
        return event

    to_json = Event.to_json

    def to_json_spy(self):
        if len(self.data.get("log", "")) > big:
            heavy["serialize"].append(on_loop())
        return to_json(self)

    compress = Compressor.compress

    def compress_spy(self, data):
        if len(data) > big:
            heavy["compress"].append(on_loop())
        return compress(self, data)

    render = telegram_format.render

    def render_spy(event, **kwargs):
        if len(event.data.get("log", "")) > big:
            heavy["render"].append(on_loop())
        return render(event, **kwargs)

    monkeypatch.setattr("bridge.ingest.ingestor.parse_file", parse_spy)
    monkeypatch.setattr(Event, "to_json", to_json_spy)
    monkeypatch.setattr(Compressor, "compress", compress_spy)
    monkeypatch.setattr("bridge.telegram.send.render", render_spy)
    log = "".join(chr(ord("a") + (i * 7919 % 26)) if i % 11 else " " for i in range(950_000))
    drop(
        world.CC_TELEGRAM_EVENTS_DIR, {"type": "info_notification", "title": "big log", "data": {"log": log}}
    )

    await run_pipeline()

    assert emulator.state.sent_messages(ALICE)  # delivered, in parts
    for step, threads in heavy.items():
        assert threads, f"{step} never saw the 1 MB event"
        assert not any(threads), f"{step} ran on the event loop"


# --- several processes -------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Children:
    """Real processes of the project (web, workers), stopped at the end whatever happens."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen:
        log = (self.tmp_path / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=BASE_DIR, env=self.env | env, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs[name] = proc
        return proc

    def run(self, *args: str, **env: str) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=BASE_DIR,
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture
def children(world, emulator, tmp_path, key_prefix):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PROMETHEUS_MULTIPROC_DIR", "CC_TELEGRAM_METRICS_DIR", "CC_TELEGRAM_METRICS_TOKEN")
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "cctelegram.settings",
        "DATABASE_URL": child_database_url(),
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_BASE_URL": emulator.base_url,
        "TELEGRAM_ALLOWED_USERS": "",
        "CC_TELEGRAM_REDIS_PREFIX": key_prefix,
        "CC_TELEGRAM_LOG_LEVEL": "WARNING",
    }
    procs = Children(tmp_path, env)
    yield procs
    procs.close()


def events_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name / "events"
    path.mkdir(parents=True)
    return path


def wait_for(what: str, check, *, timeout: float = 60.0, logs=lambda: ()):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(logs()))
        time.sleep(0.25)


def test_several_processes_sum_into_one_metrics_endpoint(children, tmp_path):
    metrics_dir = tmp_path / "metrics"
    port = free_port()
    shared = {"CC_TELEGRAM_METRICS_DIR": str(metrics_dir)}
    web = children.start(
        "web", "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "cctelegram.asgi:application", **shared
    )
    dirs = {name: events_dir(tmp_path, name) for name in ("a", "b")}
    workers = {
        name: children.start(
            name,
            "manage.py",
            "run_bridge",
            CC_TELEGRAM_EVENTS_DIR=str(path),
            CC_TELEGRAM_RESPONSES_DIR=str(path.parent / "responses"),
            **shared,
        )
        for name, path in dirs.items()
    }
    run = uuid.uuid4().hex[:8]
    for i in range(3):
        drop(dirs["a"], {"type": "info_notification", "title": f"a{i} {run}"})
    for i in range(2):
        drop(dirs["b"], {"type": "info_notification", "title": f"b{i} {run}"})
    drop(dirs["b"], {"type": "task_completion", "title": f"b done {run}"})

    def scrape_web():
        # A page of Django's (probes and scrapes are answered before its middleware, uncounted), so the web
        # process has requests of its own to report.
        httpx.get(f"http://127.0.0.1:{port}/admin/login/", timeout=5)
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        return parse(response.text) if response.status_code == 200 else None

    def all_delivered():
        samples = scrape_web()
        # An event counts as processed once its outcome is written, a moment after its message is sent.
        if (
            samples
            and value(samples, "cc_telegram_messages_total", outcome="sent") == 6
            and (
                value(samples, "cc_telegram_events_processed_total", type="info_notification") == 5
                and value(samples, "cc_telegram_events_processed_total", type="task_completion") == 1
            )
        ):
            pids = {s.get("pid") for s in series(samples, "cc_telegram_process_resident_memory_bytes")}
            if len(pids) == 3:  # both workers have beaten their heart, and the web process answers
                return samples
        return None

    samples = wait_for(
        "six deliveries by two workers",
        all_delivered,
        logs=lambda: [children.log(n) for n in ("web", "a", "b")],
    )

    assert value(samples, "cc_telegram_events_received_total", type="info_notification") == 5
    assert value(samples, "cc_telegram_events_received_total", type="task_completion") == 1
    assert value(samples, "cc_telegram_events_processed_total", type="info_notification") == 5
    assert value(samples, "cc_telegram_end_to_end_seconds_count") == 6
    pids = {s["pid"] for s in series(samples, "cc_telegram_process_resident_memory_bytes")}
    assert pids == {str(web.pid), str(workers["a"].pid), str(workers["b"].pid)}
    # One shared queue: its depth is one series (the highest report), not one per process.
    assert all("pid" not in s for s in series(samples, "cc_telegram_queue_depth"))
    assert "django_http_requests_total_by_method_total" in {name for name, _ in samples}

    children.stop("b")

    def b_gone():
        samples = scrape_web()  # the web process may serve a rendering up to a second old
        pids = {s["pid"] for s in series(samples, "cc_telegram_process_resident_memory_bytes")}
        return samples if pids == {str(web.pid), str(workers["a"].pid)} else None

    # A stopped worker's live gauges are gone...
    samples = wait_for("the stopped worker's gauges to go", b_gone, timeout=10)
    assert (
        value(samples, "cc_telegram_events_received_total", type="info_notification") == 5
    )  # ...its counts stay


def test_a_worker_serves_its_own_metrics_port_behind_the_token(children, tmp_path):
    port = free_port()
    path = events_dir(tmp_path, "solo")
    children.start(
        "solo",
        "manage.py",
        "run_bridge",
        "--no-send",
        "--metrics-port",
        str(port),
        CC_TELEGRAM_EVENTS_DIR=str(path),
        CC_TELEGRAM_METRICS_TOKEN="scrape-me",
    )
    for i in range(2):
        drop(path, {"type": "info_notification", "title": f"solo {i} {uuid.uuid4()}"})
    url = f"http://127.0.0.1:{port}/metrics"

    def counted():
        response = httpx.get(url, headers={"Authorization": "Bearer scrape-me"}, timeout=5)
        samples = parse(response.text)
        return value(samples, "cc_telegram_events_received_total", type="info_notification") == 2

    wait_for("the worker's own /metrics", counted, logs=lambda: [children.log("solo")])
    assert httpx.get(url, timeout=5).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404


def test_metrics_can_be_switched_off_for_the_overhead_measurement(children, tmp_path):
    path = events_dir(tmp_path, "off")
    for i in range(2):
        drop(path, {"type": "info_notification", "title": f"off {i} {uuid.uuid4()}"})
    off = {"CC_TELEGRAM_METRICS": "off", "CC_TELEGRAM_EVENTS_DIR": str(path)}

    out = children.run("manage.py", "run_bridge", "--once", "--no-send", **off)
    assert "stored 2" in out
    probe = (
        "import json; from django.conf import settings; from bridge import metrics; "
        "body = metrics.exposition()[0]; "
        "print(json.dumps({'enabled': metrics.ENABLED, 'bridge': b'cc_telegram_' in body, "
        "'middleware': [m for m in settings.MIDDLEWARE if 'prometheus' in m]}))"
    )
    report = json.loads(children.run("manage.py", "shell", "-c", probe, **off).strip().splitlines()[-1])
    assert report == {"enabled": False, "bridge": False, "middleware": []}
    assert django_settings.CC_TELEGRAM_METRICS  # this process, untouched
