"""Reduce per-case values to summary statistics, skipping NaN, with bootstrap CIs."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], num_samples: int, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    Resamples the values with replacement ``num_samples`` times (NumPy's
    ``default_rng(seed)``), takes each resample's mean, and returns the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those means (linear
    interpolation).

    Args:
        values: the per-case values, without NaN.
        num_samples: number of bootstrap resamples, >= 1.
        level: confidence level in (0, 1). Default 0.95.
        seed: seed of the resampling. Default 0.

    Returns:
        ``(low, high)``; ``(nan, nan)`` with no value.

    Raises:
        ValueError: ``num_samples < 1``, ``level`` outside (0, 1) or a NaN value.

    References:
        Efron & Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall, 1993,
        ch. 13 (percentile interval).
    """
    if num_samples < 1:
        raise ValueError(f"`num_samples` must be >= 1, received {num_samples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must be in (0, 1), received {level!r}")
    arr = np.asarray(list(values), dtype=np.float64).reshape(-1)
    if np.isnan(arr).any():
        raise ValueError("`values` must not contain NaN; drop them first")
    if arr.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(num_samples, arr.size))].mean(axis=1)
    low, high = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return (float(low), float(high))


def summarize(values: dict[str, Sequence[float]], bootstrap_samples: int = 0,
              level: float = 0.95, seed: int = 0) -> dict[str, dict[str, float]]:
    """Reduce per-case values to statistics, skipping NaN.

    Args:
        values: ``{metric name: [value per case]}``.
        bootstrap_samples: resamples for the confidence interval of the mean; 0 (the
            default) leaves the interval out.
        level: confidence level of the interval. Default 0.95.
        seed: seed of the resampling (the same for every metric). Default 0.

    Returns:
        ``{metric name: {"mean", "median", "std", "count", "num_nan"}}``, plus
        ``"ci_low", "ci_high"`` (see :func:`bootstrap_ci`) when
        ``bootstrap_samples > 0``. ``std`` is the population standard deviation
        (``ddof=0``); ``count`` is the number of non-NaN values and ``num_nan`` the
        number of NaN values skipped. With no non-NaN value, the statistics are NaN
        and count is 0.
    """
    out = {}
    for name, seq in values.items():
        arr = np.asarray(list(seq), dtype=np.float64).reshape(-1)
        nan = np.isnan(arr)
        kept = arr[~nan]
        if kept.size:
            stats = (float(kept.mean()), float(np.median(kept)), float(kept.std()))
        else:
            stats = (math.nan, math.nan, math.nan)
        out[name] = {"mean": stats[0], "median": stats[1], "std": stats[2],
                     "count": int(kept.size), "num_nan": int(nan.sum())}
        if bootstrap_samples > 0:
            low, high = bootstrap_ci(kept, bootstrap_samples, level, seed)
            out[name].update(ci_low=low, ci_high=high)
    return out


def rank_cases(values: Sequence[float]) -> Optional[dict[str, int]]:
    """Indices of the best, median and worst cases by a higher-is-better metric.

    NaN values are skipped; cases are sorted best first (ties keep case order) and the
    median case is the one at position ``(n - 1) // 2``. Returns ``None`` when every
    value is NaN.
    """
    arr = np.asarray(list(values), dtype=np.float64).reshape(-1)
    kept = np.flatnonzero(~np.isnan(arr))
    if kept.size == 0:
        return None
    order = kept[np.argsort(-arr[kept], kind="stable")]
    return {"best": int(order[0]), "median": int(order[(order.size - 1) // 2]),
            "worst": int(order[-1])}
