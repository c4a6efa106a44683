"""Inference at the original resolution, scoring and evaluation reports.

:func:`predict_probabilities` runs the model at the training size and brings its
logits back to the image's original size; :func:`evaluate` scores every case with
:mod:`segtie.metrics` at that size and writes the reports of :mod:`segtie.reports`.
No config objects and no MLflow here: the caller passes plain values.
"""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import tensorflow as tf

from segtie import metrics, pipeline
from segtie.reports import save_overlay_grid, write_per_case_csv, write_summary_json

__all__ = ["predict_probabilities", "evaluate", "save_overlay_grid"]

logger = logging.getLogger(__name__)


def predict_probabilities(model, image: np.ndarray, image_size: Sequence[int]) -> np.ndarray:
    """Foreground probabilities of one image at its original size.

    The image is preprocessed with :func:`segtie.pipeline.preprocess_image` (resized to
    ``image_size`` and scaled to [0, 1]), the model gives logits at ``image_size``,
    and the *logits* are resized bilinearly to the original size before the sigmoid
    (as nnU-Net v2 resamples logits before its softmax). Resizing a thresholded mask
    instead would give blocky edges; resizing probabilities gives a softer edge than
    the model's (sigmoid saturates), so the result depends on which is resized.

    Args:
        model: a Keras model mapping ``(1, H, W, 3)`` float32 to logits
            ``(1, H, W, 1)``.
        image: the original image, uint8.
        image_size: ``[H, W]`` the model was trained at.

    Shapes:
        ``image``: ``(H0, W0, 3)``. Returns ``(H0, W0)``.

    Returns:
        float32 probabilities in [0, 1] at the original size.

    Raises:
        ValueError: ``image`` is not ``(H0, W0, 3)`` or the model output is not
            ``(1, H, W, 1)``.
        TypeError: ``image`` is not uint8 (from ``preprocess_image``).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"`image` must have shape (height, width, 3), received "
                         f"{image.shape}")
    height, width = image.shape[:2]
    inputs = pipeline.preprocess_image(image, list(image_size))
    logits = model(tf.expand_dims(tf.convert_to_tensor(inputs, tf.float32), 0),
                   training=False)
    logits = tf.convert_to_tensor(logits, tf.float32)
    if logits.shape.rank != 4 or logits.shape[0] != 1 or logits.shape[-1] != 1:
        raise ValueError(f"The model must output logits of shape (1, height, width, 1), "
                         f"received {tuple(logits.shape)}")
    logits = tf.image.resize(logits, (height, width), method="bilinear")
    return tf.sigmoid(logits)[0, :, :, 0].numpy().astype(np.float32)


def _check_case(case: dict, index: int) -> tuple[str, np.ndarray, np.ndarray]:
    if not isinstance(case, dict) or not {"id", "image", "mask"} <= set(case):
        keys = sorted(case) if isinstance(case, dict) else type(case).__name__
        raise ValueError(f"Case {index} must be a dict with keys 'id', 'image', 'mask', "
                         f"received {keys}")
    case_id = str(case["id"])
    image, mask = np.asarray(case["image"]), np.asarray(case["mask"])
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if image.shape[:2] != mask.shape:
        raise ValueError(f"Case {case_id!r}: image {image.shape} and mask {mask.shape} "
                         "must have the same height and width")
    return case_id, image, mask


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "case"


def evaluate(model, cases: Iterable[dict], image_size: Sequence[int], threshold: float,
             output_dir: str | Path, num_overlays: int,
             spacing: Optional[Sequence[float]] = None,
             log_every: int = 50) -> tuple[list[dict], dict]:
    """Predict, score and report every case at its original resolution.

    A pixel is foreground when its probability is strictly greater than
    ``threshold`` (as ``keras.metrics.BinaryAccuracy``). Metrics follow the
    conventions of :mod:`segtie.metrics` (NaN for an empty reference, skipped by the
    summary).

    Writes under ``output_dir``:

    * ``per_case.csv``: ``id, dice, iou, hd95, height, width``, one row per case;
    * ``summary.json``: per metric ``mean, median, std, count, num_nan``, plus
      ``num_cases``, ``threshold``, ``image_size`` and ``hd95_units``
      (``"mm"`` with ``spacing``, else ``"pixels"``); NaN is written as ``null``;
    * ``overlays/NNN_<id>.png``: image | ground truth | prediction for the first
      ``num_overlays`` cases (see :func:`segtie.reports.save_overlay_grid`).

    Args:
        model: Keras model outputting logits ``(1, H, W, 1)``.
        cases: iterable of ``{"id": str, "image": uint8 (H0, W0, 3),
            "mask": uint8 (H0, W0) in {0, 1}}``; may be a generator.
        image_size: ``[H, W]`` the model runs at.
        threshold: probability threshold in [0, 1].
        output_dir: folder for the reports (created).
        num_overlays: how many cases get an overlay PNG (>= 0).
        spacing: ``(row, col)`` mm per pixel for HD95; ``None`` = pixels.
        log_every: log a progress line every this many cases.

    Returns:
        ``(rows, summary)``: the per-case rows as written to the CSV, and the summary
        as written to the JSON (with NaN instead of ``null``).

    Raises:
        ValueError: no cases, a malformed case (the message names it), a mask not in
            {0, 1}, ``threshold`` outside [0, 1] or ``num_overlays < 0``.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be in [0, 1], received {threshold!r}")
    if num_overlays < 0:
        raise ValueError(f"`num_overlays` must be >= 0, received {num_overlays!r}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    start = time.perf_counter()
    for index, case in enumerate(cases):
        case_id, image, mask = _check_case(case, index)
        probabilities = predict_probabilities(model, image, image_size)
        prediction = probabilities > threshold
        scores = metrics.score_case(mask, prediction, spacing, case_id=case_id)
        rows.append({"id": case_id, **scores,
                     "height": int(mask.shape[0]), "width": int(mask.shape[1])})
        if index < num_overlays:
            save_overlay_grid(
                [image], [mask], [prediction],
                output_dir / "overlays" / f"{index:03d}_{_safe_name(case_id)}.png",
                titles=[f"{case_id}  dice={scores['dice']:.3f}"])
        if (index + 1) % max(1, log_every) == 0:
            _log_progress(rows, start)
    if not rows:
        raise ValueError("`cases` is empty: there is nothing to evaluate")
    if len(rows) % max(1, log_every):
        _log_progress(rows, start)
    summary = {
        **metrics.summarize({name: [r[name] for r in rows] for name in metrics.METRIC_NAMES}),
        "num_cases": len(rows),
        "threshold": float(threshold),
        "image_size": [int(s) for s in image_size],
        "hd95_units": "mm" if spacing is not None else "pixels",
    }
    write_per_case_csv(rows, output_dir / "per_case.csv")
    write_summary_json(summary, output_dir / "summary.json")
    logger.info("Evaluation of %d cases: dice %.4f, iou %.4f, hd95 %.2f %s; reports in %s",
                len(rows), summary["dice"]["mean"], summary["iou"]["mean"],
                summary["hd95"]["mean"], summary["hd95_units"], output_dir)
    return rows, summary


def _log_progress(rows: list[dict], start: float) -> None:
    dice_values = [r["dice"] for r in rows if not math.isnan(r["dice"])]
    mean = sum(dice_values) / len(dice_values) if dice_values else math.nan
    logger.info("Evaluated %d cases in %.1f s, running mean dice %.4f",
                len(rows), time.perf_counter() - start, mean)
