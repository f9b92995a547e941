"""The bench's picture: latency distributions, throughput per scenario, and the soak's memory over time.

Scenarios leave their raw samples in ``result.series`` under two conventional keys the plot reads:
``latency_ms`` ({label: [milliseconds, ...]}) and ``throughput`` ({label: per second}); the soak adds ``soak``.
matplotlib is the optional ``bench`` extra: without it the run still writes its table and JSON.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt

from bridge.bench.report import OK, ScenarioResult


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _cdf(ax, samples: list[float], label: str) -> None:
    ordered = sorted(samples)
    n = len(ordered)
    ax.plot(ordered, [(i + 1) / n * 100 for i in range(n)], label=f"{label} (n={n:,})", linewidth=1.5)


def draw(results: list[ScenarioResult], path: Path, *, title: str) -> None:
    done = [r for r in results if r.status == OK]
    e2e = next((r for r in done if r.name == "e2e"), None)
    latencies = {
        f"{r.name}: {label}": samples
        for r in done
        if r.name != "e2e"
        for label, samples in r.series.get("latency_ms", {}).items()
        if samples
    }
    throughput = {
        f"{r.name}: {label}": value
        for r in done
        for label, value in r.series.get("throughput", {}).items()
        if value
    }
    soak = next((r.series["soak"] for r in done if "soak" in r.series), None)

    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    (ax_e2e, ax_lat), (ax_tp, ax_last) = axes

    ax_e2e.set_title("e2e: file renamed → emulator got sendMessage")
    if e2e and any(e2e.series.get("latency_ms", {}).values()):
        for label, samples in e2e.series["latency_ms"].items():
            if samples:
                _cdf(ax_e2e, samples, label)
        ax_e2e.set_xscale("log")
        ax_e2e.set_xlabel("latency (ms, log scale)")
        ax_e2e.set_ylabel("% of events delivered within")
        ax_e2e.axvline(10, color="grey", linestyle=":", linewidth=1)
        ax_e2e.axvline(50, color="grey", linestyle="--", linewidth=1)
        ax_e2e.text(10, 3, " p50 target", color="grey", fontsize=8)
        ax_e2e.text(50, 3, " p99 target", color="grey", fontsize=8)
        ax_e2e.legend(fontsize=8, loc="lower right")
        ax_e2e.grid(True, which="both", alpha=0.3)
    else:
        _empty(ax_e2e, "e2e not run")

    ax_lat.set_title("other latencies")
    if latencies:
        for label, samples in latencies.items():
            _cdf(ax_lat, samples, label)
        ax_lat.set_xscale("log")
        ax_lat.set_xlabel("latency (ms, log scale)")
        ax_lat.set_ylabel("% of operations within")
        ax_lat.legend(fontsize=7, loc="lower right")
        ax_lat.grid(True, which="both", alpha=0.3)
    else:
        _empty(ax_lat, "no latency samples")

    ax_tp.set_title("throughput")
    if throughput:
        labels = list(throughput)
        values = [throughput[label] for label in labels]
        bars = ax_tp.barh(labels, values, color="tab:blue")
        for bar, value in zip(bars, values, strict=True):
            ax_tp.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {value:,.0f}/s",
                va="center",
                fontsize=8,
            )
        ax_tp.set_xlim(0, max(values) * 1.25)
        ax_tp.set_xlabel("per second")
        ax_tp.tick_params(axis="y", labelsize=8)
        ax_tp.invert_yaxis()
        ax_tp.grid(True, axis="x", alpha=0.3)
    else:
        _empty(ax_tp, "no throughput figures")

    if soak:
        ax_last.set_title("soak: bridge RSS and latency over time")
        rss, windows = soak["rss"], soak["latency"]
        ax_last.plot(
            [s["minute"] for s in rss], [s["rss_mb"] for s in rss], color="tab:red", label="RSS (MB)"
        )
        ax_last.set_xlabel("minutes")
        ax_last.set_ylabel("RSS (MB)", color="tab:red")
        twin = ax_last.twinx()
        minutes = [w["minute"] for w in windows]
        twin.plot(minutes, [w["p50_ms"] for w in windows], color="tab:blue", label="latency p50 (ms)")
        twin.plot(minutes, [w["p99_ms"] for w in windows], color="tab:blue", linestyle="--", label="p99")
        twin.set_ylabel("latency (ms)", color="tab:blue")
        twin.legend(fontsize=8, loc="upper right")
    else:
        compression = next((r.series["compression"] for r in done if "compression" in r.series), None)
        ax_last.set_title("zstd: compression time per level and payload size")
        if compression:
            for size in dict.fromkeys(row["size"] for row in compression):
                rows = [row for row in compression if row["size"] == size]
                ax_last.plot(
                    [r["level"] for r in rows], [r["compress_ms"] for r in rows], marker="o", label=size
                )
            ax_last.set_yscale("log")
            ax_last.set_xlabel("zstd level")
            ax_last.set_ylabel("ms per payload (log scale)")
            ax_last.legend(fontsize=8)
            ax_last.grid(True, which="both", alpha=0.3)
        else:
            _empty(ax_last, "no soak or compression run")

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
