"""Hostile input: every kind of broken, oversized, tricky or plain strange event file, dropped into a running
pipeline between good events. Never a crash; each bad file quarantined with its reason (or left alone, for a
documented reason); the good events around them delivered. Plus a fuzz test of parsing through the ingestor.

The corpus is generated at test time by tests/hostile/corpus.py (a 100 MB file is sparse: no disk, no commit).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.events.catalog import CATALOG
from bridge.events.parse import CODES, Limits
from bridge.ingest.ingestor import Ingestor
from bridge.ingest.quarantine import failed_dir
from bridge.ingest.store import EventStore
from bridge.ingest.watcher import FileSource
from bridge.models import AuditEntry, BridgeSettings, Event, Recipient
from bridge.pipeline import Pipeline
from bridge.queue import get_queue
from bridge.telegram.send import build_sender
from tests.emulator_fixtures import TEST_TOKEN
from tests.hostile.corpus import build_corpus, flicker, grow, grow_past_limit, in_thread
from tests.processes import drop_event

pytestmark = pytest.mark.django_db(transaction=True)

ALICE = 424242
TIMEOUT = 60.0


def tune() -> None:
    current = BridgeSettings.load()
    current.rate_per_chat_per_second = 100
    current.rate_global_per_second = 1000
    current.digest_threshold = 10_000
    current.save()


@pytest.fixture
async def pipeline(folders, emulator):
    folders.TELEGRAM_BOT_TOKEN = TEST_TOKEN
    folders.TELEGRAM_API_BASE_URL = emulator.base_url
    await Recipient.objects.acreate(chat_id=ALICE, display_name="alice")
    await sync_to_async(tune)()
    pipeline = Pipeline(sender_factory=build_sender)
    await pipeline.start()
    yield pipeline
    await pipeline.stop()


def received_texts(emulator) -> str:
    return "\n".join(m["message"].get("text", "") for m in emulator.state.sent_messages(ALICE))


def bytes_read_by_this_process() -> int:
    """rchar of /proc/self/io: every byte this process read through read(2) and friends."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


async def wait_until(condition, what: str, timeout: float = TIMEOUT, detail=None):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))
        await asyncio.sleep(0.05)
    return result


async def test_hostile_files_among_good_ones_never_stop_the_bridge(pipeline, emulator, tmp_path):
    events = pipeline.events_dir
    failed = failed_dir(events)
    outside = tmp_path / "outside"
    outside.mkdir()
    corpus = build_corpus(running_as_root=os.geteuid() == 0)
    read_before = bytes_read_by_this_process()

    good_titles = []
    helpers = [
        in_thread(flicker, events),
        in_thread(grow, events, "grown-in-place.json", "hostile grown in place"),
        in_thread(grow_past_limit, events, "growing-past-limit.json", limit=Limits().max_file_bytes),
    ]
    for i, hostile in enumerate(corpus):
        await asyncio.to_thread(hostile.create, events, outside)
        title = f"good event {i:03d}"
        drop_event(events, f"good-{i:03d}.json", {"type": "task_completion", "title": title})
        good_titles.append(title)
    for helper in helpers:
        await asyncio.to_thread(helper.join)

    quarantined = [h for h in corpus if h.outcome == "quarantined"]
    delivered = [h.title for h in corpus if h.outcome == "delivered"] + ["hostile grown in place"]
    expected_notes = {h.name: h.code for h in quarantined} | {"growing-past-limit.json": "too_large"}

    def notes() -> dict[str, dict]:
        found = {}
        for note in failed.glob("*.error.json") if failed.exists() else ():
            body = json.loads(note.read_text())
            found[body["file"]] = body
        return found

    await wait_until(lambda: len(notes()) >= len(expected_notes), "every hostile file to be quarantined")

    def missing() -> list[str]:
        texts = received_texts(emulator)
        return [t for t in good_titles + delivered if t not in texts]

    await wait_until(lambda: not missing(), "every good event to be delivered", detail=missing)
    read_during = bytes_read_by_this_process() - read_before

    found = notes()
    wrong = {name: (code, found.get(_shown(name), {}).get("code")) for name, code in expected_notes.items()}
    wrong = {name: pair for name, pair in wrong.items() if pair[1] not in pair[0].split("|")}
    assert wrong == {}, f"quarantined with the wrong code (expected, got): {wrong}"
    moved = {_shown(p.name) for p in failed.iterdir()}
    for note in found.values():
        assert note["reason"], note
        assert note["quarantined_as"] in moved
    audited = await AuditEntry.objects.filter(action="event.quarantined").acount()
    assert audited == len(found)

    # Left alone on purpose, and nothing else left behind in the folder.
    ignored = {h.name for h in corpus if h.outcome == "ignored"}
    remaining = {p.name for p in events.iterdir()} - {"failed", "kept"}
    assert remaining == ignored, f"left in the folder: {sorted(remaining - ignored)}"
    assert (events / "folder.json" / "inner.json").exists()
    # Whether the watcher noticed the folder or a sweep passed it by, it is left alone.
    noticed = await pipeline.ingestor.ingest([events / "folder.json"])
    assert (noticed.quarantined, noticed.stored) == ([], [])
    assert (events / "folder.json" / "inner.json").exists()

    texts = received_texts(emulator)
    assert "outside secret must never be sent" not in texts
    assert not [name for name in found if name.startswith("flicker-")]
    assert await Event.objects.filter(title__startswith="good event").acount() == len(good_titles)
    # The 100 MB file was refused on its size alone: this whole run read far less than it.
    assert read_during < 30 * 1024 * 1024, f"read {read_during / 1e6:.0f} MB"
    assert all(not task.done() for task in pipeline._tasks), "a pipeline task died"

    print(
        f"\nhostile corpus: {len(corpus) + 3} entries (+200 flickering files) among {len(good_titles)} good "
        f"events: {len(found)} quarantined, {len(delivered)} odd-but-valid delivered, {len(ignored)} ignored; "
        f"{len(good_titles)} good delivered; {read_during / 1e6:.1f} MB read in all"
    )
    for hostile in corpus:
        ending = hostile.outcome + (f" ({hostile.code})" if hostile.code else "")
        print(f"  {hostile.what:<55} {ending}{' - ' + hostile.why if hostile.why else ''}")


def _shown(name: str) -> str:
    """How a file name appears in its quarantine note: bytes that are not UTF-8 shown as escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# --- fuzzing the parser through the ingestor ----------------------------------------------------------------------

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
EVENT_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.sampled_from(sorted(CATALOG)), JSON_VALUES),
        "title": st.one_of(st.text(max_size=300), JSON_VALUES),
        "description": JSON_VALUES,
        "source": JSON_VALUES,
        "timestamp": st.one_of(st.datetimes().map(lambda d: d.isoformat()), JSON_VALUES),
        "task_id": JSON_VALUES,
        "event_id": JSON_VALUES,
        "retry_count": JSON_VALUES,
        "data": st.one_of(
            st.dictionaries(st.sampled_from(["exit_code", "severity", "tags", "options", "x"]), JSON_VALUES),
            JSON_VALUES,
        ),
    },
)


def _mangle(data: bytes, cut: int, insert: bytes) -> bytes:
    if not data:
        return insert
    at = cut % (len(data) + 1)
    return data[:at] + insert + data[at:]


FILE_CONTENTS = st.one_of(
    st.binary(max_size=300),
    EVENT_FIELDS.map(lambda e: json.dumps(e).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.tuples(EVENT_FIELDS, st.integers(0, 10_000), st.binary(max_size=4)).map(
        lambda t: _mangle(json.dumps(t[0]).encode(), t[1], t[2])
    ),
    st.tuples(EVENT_FIELDS, st.sampled_from(["utf-8-sig", "utf-16", "latin-1"])).map(
        lambda t: json.dumps(t[0], ensure_ascii=False).encode(t[1], "replace")
    ),
)


@pytest.fixture
def events_dir(folders) -> Path:
    return folders.CC_TELEGRAM_EVENTS_DIR


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=FILE_CONTENTS)
def test_fuzzed_files_are_stored_or_quarantined_never_a_crash(events_dir, content):
    path = events_dir / "fuzzed.json"
    path.write_bytes(content)
    os.utime(path, (time.time() - 5, time.time() - 5))  # settled: judged at once, not waited for
    result = asyncio.run(_ingest(events_dir, path))
    outcomes = len(result.stored) + len(result.duplicates) + len(result.quarantined)
    assert outcomes == 1, (content, result)
    assert not path.exists()
    if result.quarantined:
        notes = sorted(failed_dir(events_dir).glob("fuzzed*.error.json"), key=os.path.getmtime)
        assert json.loads(notes[-1].read_text())["code"] in CODES
    else:
        assert Event.objects.filter(event_id=(result.stored or result.duplicates)[0]).exists()


async def _ingest(events_dir: Path, path: Path):
    queue = get_queue()
    try:
        ingestor = Ingestor(events_dir, EventStore(queue), FileSource(events_dir, asyncio.Queue()))
        return await ingestor.ingest([path])
    finally:
        await queue.close()
