"""The auto-tuner in a worker: sample, share, and (in the one worker holding the lease) decide and apply.

Every ``interval`` seconds, while BridgeSettings.autotune_enabled, each worker samples itself and leaves the
sample in the Django cache (shared through Redis when configured), so the tuning worker decides on the worst
figures of all live workers, not only its own. A change goes through ``bump_settings(actor="auto-tuner")``: an
AuditEntry with before/after and the reason, a new settings version every worker applies, a "tuner" message on
the dashboard group and ``cc_telegram_tuner_changes_total``.

The operator's values are the ceilings, read back from the audit log: for each knob, the value its latest change
by anyone but the tuner set, so the tuner restores exactly what the operator chose, whichever worker tunes and
however often workers restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import asdict
from datetime import timedelta

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from bridge import metrics
from bridge.consumers import DASHBOARD_GROUP, WORKERS_GROUP
from bridge.health import WORKER_STALE
from bridge.models import AuditEntry, BridgeSettings, Worker, bump_settings
from bridge.tuning.lease import tuner_lease
from bridge.tuning.telemetry import ProcessTelemetry, combine
from bridge.tuning.tuner import KNOBS, Change, Knobs, Sample, Tuner, Window

logger = logging.getLogger(__name__)

ACTOR = "auto-tuner"
INTERVAL_SECONDS = 10.0
WINDOW_SAMPLES = 60  # ten minutes at 10 s: more than any confirmation or calm period needs
HISTORY_SCAN = 1000  # settings changes read back to find the operator's values and the tuner's recent moves
_TELEMETRY_KEY = "tuner:telemetry:{}"


class AutoTuner:
    def __init__(
        self,
        name: str,
        *,
        tuner: Tuner | None = None,
        telemetry: ProcessTelemetry | None = None,
        lease=None,
        interval: float = INTERVAL_SECONDS,
        applied=None,
    ) -> None:
        """``applied`` is awaited with the new settings version after a change, so this worker applies it at once."""
        self.name = name
        self.tuner = tuner or Tuner()
        self.telemetry = telemetry or ProcessTelemetry()
        self.interval = interval
        self.lease = lease or tuner_lease(name, ttl=3 * interval)
        self.applied = applied
        self.window: deque[Sample] = deque(maxlen=WINDOW_SAMPLES)

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                logger.exception("auto-tuner step failed; next in %.0f s", self.interval)
            await asyncio.sleep(self.interval)

    async def step(self) -> list[Change]:
        """One round; returns the changes applied (none unless enabled and this worker holds the lease)."""
        if not await sync_to_async(_enabled)():
            self.window.clear()  # figures from before it was switched on say nothing about now
            await self.lease.release()
            return []
        own = self.telemetry.sample()
        self.window.append(await sync_to_async(_share)(self.name, own, self.interval))
        if not await self.lease.acquire():
            return []
        changes, version = await sync_to_async(self._decide_and_apply)(tuple(self.window))
        if changes:
            for change in changes:
                metrics.TUNER_CHANGES.labels(knob=change.knob, direction=change.direction).inc()
                logger.info(
                    "auto-tuner: %s %s -> %s (%s)", change.knob, change.old, change.new, change.reason
                )
            await _announce(changes, version)
            if self.applied is not None:
                await self.applied(version)
        return changes

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.lease.release()
        await self.lease.close()

    def _decide_and_apply(self, samples: tuple[Sample, ...]) -> tuple[list[Change], int]:
        # One transaction from reading the tuner's history to writing its change: a second tuner (a lease
        # overlap) waits for it, then sees the change and keeps the dwell.
        with transaction.atomic():
            current = BridgeSettings.objects.select_for_update().get(pk=BridgeSettings.load().pk)
            if not current.autotune_enabled:
                return [], current.version
            ceilings, history = read_history(current)
            window = Window(
                samples=samples,
                knobs=_knobs(current),
                ceilings=ceilings,
                latency_target_ms=current.autotune_p99_latency_ms,
                memory_budget_mb=current.autotune_memory_budget_mb,
                history=history,
            )
            changes = self.tuner.decide(window)
            if not changes:
                return [], current.version
            updated = bump_settings(
                ACTOR,
                note="; ".join(c.reason for c in changes),
                **{c.knob: _typed(c.knob, c.new) for c in changes},
            )
        return changes, updated.version


def read_history(current: BridgeSettings) -> tuple[Knobs, tuple[Change, ...]]:
    """The operator's value of each knob (its ceiling) and the tuner's changes of the last day, oldest first.

    A knob's ceiling is what its latest change by anyone but the tuner set; if only the tuner changed it in the
    entries read, what it was before the tuner's first change; if nobody did, its current value. Never below the
    current value: a value above it can only come from an unaudited save, which is the operator's doing.
    """
    entries = list(
        AuditEntry.objects.filter(action="settings.change")
        .order_by("-pk")
        .values_list("actor", "before", "after", "created_at")[:HISTORY_SCAN]
    )
    ceilings = {}
    for knob in KNOBS:
        value, found = getattr(current, knob), None
        for actor, before, after in ((a, b or {}, c or {}) for a, b, c, _ in entries):
            if knob not in after or before.get(knob) == after[knob]:
                continue
            if actor != ACTOR:
                found = after[knob]
                break
            found = before.get(knob, found)
        ceilings[knob] = max(value, found) if found is not None else value
    since = timezone.now() - timedelta(days=1)
    history = []
    for actor, before, after, created_at in reversed(entries):
        if actor != ACTOR or created_at < since:
            continue
        for knob in KNOBS:
            old, new = (before or {}).get(knob), (after or {}).get(knob)
            if old is not None and new is not None and old != new:
                history.append(Change(knob, old, new, "", at=created_at.timestamp()))
    return Knobs(**ceilings), tuple(history)


def _enabled() -> bool:
    return bool(
        BridgeSettings.objects.filter(pk=BridgeSettings.SINGLETON_PK)
        .values_list("autotune_enabled", flat=True)
        .first()
    )


def _share(name: str, own: Sample, interval: float) -> Sample:
    """Leave this worker's sample for the tuning worker; return the combination of every live worker's."""
    cache.set(_TELEMETRY_KEY.format(name), asdict(own), timeout=3 * interval)
    live = Worker.objects.filter(heartbeat_at__gte=timezone.now() - WORKER_STALE).values_list(
        "name", flat=True
    )
    others = [_TELEMETRY_KEY.format(n) for n in live if n != name]
    samples = [own]
    for fields in (cache.get_many(others) if others else {}).values():
        with contextlib.suppress(TypeError):  # a sample written by another version of the bridge
            sample = Sample(**fields)
            if sample.at >= own.at - interval:  # not one already counted in the previous round
                samples.append(sample)
    return combine(samples)


async def _announce(changes: list[Change], version: int) -> None:
    """Tell every worker to apply the new version now, and the dashboard what changed and why."""
    layer = get_channel_layer()
    if layer is None:
        return
    items = [{"knob": c.knob, "old": c.old, "new": c.new, "reason": c.reason} for c in changes]
    try:
        await layer.group_send(WORKERS_GROUP, {"type": "settings.changed", "version": version})
        await layer.group_send(
            DASHBOARD_GROUP, {"type": "tuner", "actor": ACTOR, "version": version, "changes": items}
        )
    except Exception:
        # Workers still apply it within a heartbeat; the dashboard shows the audit entry.
        logger.warning("auto-tuner change not announced (channel layer unavailable)")


def _knobs(s: BridgeSettings) -> Knobs:
    return Knobs(**{knob: getattr(s, knob) for knob in KNOBS})


def _typed(knob: str, value: float) -> float | int:
    return float(value) if knob == "rate_global_per_second" else int(value)
