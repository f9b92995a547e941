"""Small statistics for the bench: percentiles, a summary of a sample, slopes (least squares, Theil–Sen).

Plain Python on purpose: the bench must not need numpy to run (matplotlib, for the plot only, is optional).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from itertools import combinations


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation between closest ranks (numpy's default);
    NaN for an empty sample."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """count, mean, min, p50, p95, p99, max of a sample (NaN-free: an empty sample gives count 0 only)."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "mean": sum(values) / len(values),
        "min": min(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (units of y per unit of x); 0.0 with fewer than two distinct xs."""
    n = len(xs)
    if n < 2:
        return 0.0
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


def trend(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Theil–Sen slope: the median of the slopes between every two points. A few outliers (a burst of other work
    on a shared machine) cannot tilt it as they tilt least squares. 0.0 with fewer than two distinct xs."""
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i, j in combinations(range(len(xs)), 2) if xs[j] != xs[i]]
    return statistics.median(slopes) if slopes else 0.0
