"""Plots of per-case values (matplotlib's non-interactive Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["save_boxplot"]


def save_boxplot(values: dict[str, Sequence[float]], path: str | Path,
                 title: str = "") -> Path:
    """A box plot (with the points) of per-case values, one box per key; NaN dropped.

    Returns:
        The PNG path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = list(values)
    data = [[v for v in values[n] if not math.isnan(v)] for n in names]
    fig, ax = plt.subplots(figsize=(1.5 + 1.5 * len(names), 4))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1),
                  [f"{n}\n(n={len(d)})" for n, d in zip(names, data)])
    for i, d in enumerate(data, start=1):
        jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(d))
        ax.plot(i + jitter, d, ".", alpha=0.4, color="tab:blue")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
