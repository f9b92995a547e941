"""What a bench run found: figures with their targets and baselines, per scenario; the table and the JSON file.

A Figure is one measured number. Its target says which way is better (``<=`` or ``>=``) and the bound; its
baseline is the same quantity measured in this run by a simpler program (the naive sender) or reported by the
original system. ``ratio`` is always "times better than the baseline", so above 1 means ahead whichever way the
metric points.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OK, NOT_RUN, CRASHED = "ok", "not run", "crashed"


@dataclass(frozen=True, slots=True)
class Target:
    op: str  # "<=" or ">="
    bound: float

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise ValueError(f"a target compares with <= or >=, not {self.op!r}")

    def met(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound


@dataclass(slots=True)
class Figure:
    metric: str
    value: float | None
    unit: str
    target: Target | None = None
    baseline: float | None = None
    baseline_label: str = ""
    lower_is_better: bool = True
    note: str = ""

    @property
    def passed(self) -> bool | None:
        """None when there is no target or no value (not measured)."""
        if self.target is None or self.value is None or math.isnan(self.value):
            return None
        return self.target.met(self.value)

    @property
    def ratio(self) -> float | None:
        """Times better than the baseline (baseline / ours when lower is better, ours / baseline otherwise)."""
        if self.value is None or self.baseline is None or math.isnan(self.value):
            return None
        numerator, denominator = (
            (self.baseline, self.value) if self.lower_is_better else (self.value, self.baseline)
        )
        return numerator / denominator if denominator else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = asdict(self.target) if self.target else None
        data["passed"] = self.passed
        data["ratio"] = self.ratio
        return data


@dataclass
class ScenarioResult:
    name: str
    title: str
    status: str = OK
    reason: str = ""
    seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)
    """Raw samples kept for the plot and the JSON file (latencies, RSS over time, ...)."""
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, value: float | None, unit: str, **options: Any) -> Figure:
        figure = Figure(metric, value, unit, **options)
        self.figures.append(figure)
        return figure

    def skipped(self, metric: str, unit: str, reason: str, **options: Any) -> Figure:
        """A figure that could not be measured in this run, with the reason in its note."""
        return self.add(metric, None, unit, note=f"not run: {reason}", **options)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "figures": [f.as_dict() for f in self.figures],
            "notes": self.notes,
            "series": self.series,
        }


# --- the terminal table ----------------------------------------------------------------------------------------
HEADERS = ("scenario", "metric", "ours", "target", "baseline", "×", "result")


def fmt(value: float | None, unit: str = "") -> str:
    """Three significant figures at most, thousands separated: 0.412 ms, 4.12 ms, 41.2 ms, 1,234 ms."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    magnitude = abs(value)
    if magnitude >= 100 or value == int(value):
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:,.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip() if unit else text


def table_rows(results: list[ScenarioResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for result in results:
        if result.status != OK:
            rows.append((result.name, f"{result.status}: {result.reason}", "", "", "", "", ""))
            continue
        for index, f in enumerate(result.figures):
            name = result.name if index == 0 else ""
            if f.value is None:
                rows.append((name, f.metric, f.note or "not measured", "", "", "", ""))
                continue
            target = (
                f"{'≤' if f.target.op == '<=' else '≥'} {fmt(f.target.bound, f.unit)}" if f.target else ""
            )
            baseline = (
                f"{f.baseline_label} {fmt(f.baseline, f.unit)}".strip() if f.baseline is not None else ""
            )
            ratio = "" if f.ratio is None else f"{f.ratio:,.0f}×" if f.ratio >= 10 else f"{f.ratio:.1f}×"
            verdict = {True: "pass", False: "FAIL", None: ""}[f.passed]
            rows.append((name, f.metric, fmt(f.value, f.unit), target, baseline, ratio, verdict))
    return rows


def render_table(results: list[ScenarioResult], *, markdown: bool = False) -> str:
    rows = table_rows(results)
    if markdown:
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return "\n".join(lines)

    # A row whose last filled cell is a reason ("not run: ...") lets it run past its column instead of widening
    # the column for every other row.
    def span(row: tuple[str, ...]) -> int:
        return max((i for i, cell in enumerate(row) if cell), default=0)

    widths = [len(h) for h in HEADERS]
    for row in rows:
        last = span(row)
        for i, cell in enumerate(row):
            if i < last or (i == last and i != 1 and not cell.startswith(("not run", "crashed"))):
                widths[i] = max(widths[i], len(cell))
    widths[1] = min(widths[1], 48)

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    separator = "  ".join("-" * width for width in widths)
    return "\n".join([line(HEADERS), separator, *(line(row) for row in rows)])


def write_json(path: Path, run: dict[str, Any], results: list[ScenarioResult]) -> None:
    payload = {"run": run, "scenarios": {r.name: r.as_dict() for r in results}}
    path.write_text(json.dumps(_clean(payload), indent=1, allow_nan=False) + "\n")


def read_json(path: Path) -> tuple[dict[str, Any], list[ScenarioResult]]:
    """A run written by ``write_json``: its metadata and its results (figures and notes; series left out)."""
    data = json.loads(path.read_text())
    results = []
    for name, s in data["scenarios"].items():
        result = ScenarioResult(
            name, s["title"], status=s["status"], reason=s["reason"], seconds=s["seconds"]
        )
        result.notes = s["notes"]
        for f in s["figures"]:
            target = Target(f["target"]["op"], f["target"]["bound"]) if f["target"] else None
            result.add(
                f["metric"],
                f["value"],
                f["unit"],
                target=target,
                baseline=f["baseline"],
                baseline_label=f["baseline_label"],
                lower_is_better=f["lower_is_better"],
                note=f["note"],
            )
        results.append(result)
    return data["run"], results


def _clean(value: Any) -> Any:
    """JSON has no NaN: an undefined statistic (a percentile of nothing) becomes null."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
