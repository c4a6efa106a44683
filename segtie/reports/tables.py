"""Evaluation tables: per-case CSV, summary JSON and the printed text table.

Plain writers with no TensorFlow, config or MLflow.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["PER_CASE_COLUMNS", "format_table", "write_per_case_csv", "write_summary_json"]

PER_CASE_COLUMNS = ("id", "dice", "iou", "hd95", "height", "width")


def write_per_case_csv(rows: Sequence[dict], path: str | Path,
                       columns: Optional[Sequence[str]] = None) -> Path:
    """Write one row per case with ``columns`` (default :data:`PER_CASE_COLUMNS`).

    NaN is written as ``nan`` (``float("nan")`` and pandas read it back as NaN);
    floats are written with ``repr`` precision, so values read back exactly.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns or PER_CASE_COLUMNS),
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _json_safe(value):
    """NaN and infinities -> None (strict JSON has no NaN); NumPy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_summary_json(summary: dict, path: str | Path) -> Path:
    """Write ``summary`` as indented strict JSON; NaN becomes ``null``.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(summary), indent=2, allow_nan=False) + "\n")
    return path


def format_table(summary: dict, names: Sequence[str]) -> str:
    """The summary as a fixed-width text table: one row per metric in ``names``."""
    ci = any("ci_low" in summary[n] for n in names)
    head = f"{'metric':<12}{'mean':>9}{'median':>9}{'std':>9}"
    level = summary.get("confidence_level") or 0.95
    head += f"{format(100 * level, 'g') + '% CI of mean':>24}" if ci else ""
    lines = [head + f"{'n':>6}{'NaN':>5}"]
    for name in names:
        s = summary[name]
        line = f"{name:<12}{s['mean']:>9.4f}{s['median']:>9.4f}{s['std']:>9.4f}"
        if ci:
            interval = "[{:.4f}, {:.4f}]".format(s["ci_low"], s["ci_high"])
            line += f"{interval:>24}"
        lines.append(line + f"{s['count']:>6}{s['num_nan']:>5}")
    return "\n".join(lines)
