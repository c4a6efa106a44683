"""Evaluation of 3-D volumes: sliding-window inference, per-class scores in mm, volumes in mL.

:func:`evaluate_volumes` runs a 3-D model on every case at its own size with
:func:`segtie.inference.volumes.predict_volume` (3-D windows, Gaussian blending), takes the argmax class, and scores each foreground class one-vs-rest with
:func:`segtie.evaluation.scoring.score_prediction` (Dice, IoU, precision, recall,
specificity, HD95, ASSD, NSD), distances in millimetres from the case's header
spacing. Each class also gets its volumes (:func:`volume_ml`): ``volume_ml_class<c>``
(predicted), ``volume_ref_ml_class<c>`` (reference), ``volume_error_ml_class<c>``
(predicted minus reference, mL) and ``volume_abs_error_ml_class<c>``: what a
clinician reading hippocampal volume looks at. Writes ``per_case.csv``,
``summary.json`` (the statistics of :func:`segtie.metrics.summarize`) and, for the
first ``num_overlays`` cases, ``overlays/NNN_<id>.png`` with the middle slice of each
axis (image | reference | prediction). No config and no MLflow here.
"""

from __future__ import annotations

import collections
import logging
import math
import re
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from segtie import metrics, reports
from segtie.evaluation import scoring
from segtie.inference import InferenceOptions
from segtie.inference.volumes import predict_volume

__all__ = ["VOLUME_NAMES", "evaluate_volumes", "volume_ml", "volume_names"]

logger = logging.getLogger(__name__)
VOLUME_NAMES = ("volume_ml", "volume_ref_ml", "volume_error_ml", "volume_abs_error_ml")


def volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """The volume of a binary mask in millilitres: ``count * prod(spacing) / 1000``.

    Args:
        mask: boolean or 0/1 array ``(D, H, W)``.
        spacing: mm per voxel along each axis (1 mL = 1000 mm^3).

    Raises:
        ValueError: ``spacing`` does not have one positive entry per axis.
    """
    mask = np.asarray(mask)
    sampling = [float(s) for s in spacing]
    if len(sampling) != mask.ndim or min(sampling) <= 0:
        raise ValueError(f"`spacing` must have {mask.ndim} positive entries (mm per voxel), "
                         f"received {spacing!r}")
    return float(np.count_nonzero(mask) * math.prod(sampling) / 1000.0)


def volume_names(num_classes: int) -> tuple[str, ...]:
    """The volume columns of a report, class by class."""
    return scoring.class_names(VOLUME_NAMES, num_classes)


def _middle_slices(image, mask, prediction):
    """The middle slice of each axis: three (image in [0, 1], mask, prediction) triples."""
    low, high = float(image.min()), float(image.max())
    scaled = (image[..., 0] - low) / (high - low or 1.0)
    out = []
    for axis in range(3):
        middle = image.shape[axis] // 2
        out.append(tuple(np.take(x, middle, axis=axis) for x in (scaled, mask, prediction)))
    return out


def _row(case_id, mask, prediction, num_classes, spacing, tolerance) -> dict:
    row = {"id": case_id, **scoring.score_prediction(
        mask, prediction, num_classes, spacing=spacing, tolerance=tolerance, case_id=case_id)}
    for c in range(1, num_classes):
        predicted, reference = volume_ml(prediction == c, spacing), volume_ml(mask == c, spacing)
        row.update({f"volume_ml_class{c}": predicted, f"volume_ref_ml_class{c}": reference,
                    f"volume_error_ml_class{c}": predicted - reference,
                    f"volume_abs_error_ml_class{c}": abs(predicted - reference)})
    return row


def evaluate_volumes(model, cases: Iterable[dict], options: InferenceOptions,
                     output_dir: str | Path, num_overlays: int = 4, *,
                     nsd_tolerance: float = 1.0, bootstrap_samples: int = 0,
                     confidence_level: float = 0.95, seed: int = 0) -> tuple[list, dict]:
    """Predict, score and report every volume (see the module docstring).

    Args:
        model: a 3-D Keras model, volumes ``(n, d, h, w, C)`` -> logits ``(n, d, h, w, K)``.
        cases: iterable of ``{"id": str, "image": float32 (D0, H0, W0, C), "mask":
            integer (D0, H0, W0) in 0..K-1, "spacing": (3,) mm per voxel}``.
        options: inference options; ``window_size`` of three sides, ``num_classes`` K.
        output_dir: folder for the reports (created).
        num_overlays: how many of the first cases get an overlay PNG (>= 0).
        nsd_tolerance: NSD tolerance in mm.
        bootstrap_samples, confidence_level, seed: the summary's interval of the mean.

    Returns:
        ``(rows, summary)`` as written to ``per_case.csv`` and ``summary.json``.

    Raises:
        ValueError: no cases, a case without spacing, masks of another shape than the
            image, mask values outside 0..K-1 (each message names the case).
    """
    if options.num_classes < 2:
        raise ValueError(f"`options.num_classes` must be >= 2 for volumes (softmax over "
                         f"classes), received {options.num_classes}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    names = scoring.metric_names(options.num_classes) + volume_names(options.num_classes)
    rows, penalized, start = [], collections.Counter(), time.perf_counter()
    for index, case in enumerate(cases):
        case_id, image, mask = str(case["id"]), np.asarray(case["image"]), np.asarray(case["mask"])
        if case.get("spacing") is None or image.shape[:3] != mask.shape:
            raise ValueError(f"Case {case_id!r}: needs a `spacing` and a mask (D, H, W) of "
                             f"the image's shape, received image {image.shape}, mask "
                             f"{mask.shape}, spacing {case.get('spacing')!r}")
        spacing = [float(s) for s in case["spacing"]]
        prediction = np.argmax(predict_volume(model, image, options), axis=-1).astype(np.int32)
        rows.append(_row(case_id, mask.astype(np.int64), prediction, options.num_classes,
                         spacing, nsd_tolerance))
        rows[-1].update(depth=int(mask.shape[0]), height=int(mask.shape[1]),
                        width=int(mask.shape[2]))
        penalized.update(scoring.penalized_names(mask, prediction, options.num_classes))
        if index < num_overlays:
            slices = _middle_slices(image, mask, prediction)
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", case_id)[:80]
            reports.save_overlay_grid(
                [s[0] for s in slices], [s[1] for s in slices], [s[2] for s in slices],
                output_dir / "overlays" / f"{index:03d}_{name}.png", multiclass=True,
                titles=[f"{case_id} axis {a} middle  dice={rows[-1]['dice']:.3f}"
                        for a in range(3)])
    if not rows:
        raise ValueError("`cases` is empty: there is nothing to evaluate")
    stats = dict(bootstrap_samples=bootstrap_samples, level=confidence_level, seed=seed)
    summary = {**metrics.summarize({n: [r[n] for r in rows] for n in names}, **stats),
               "metrics": list(names), "num_cases": len(rows),
               "num_classes": options.num_classes, "distance_units": "mm",
               "hd95_units": "mm", "volume_units": "mL", "nsd_tolerance": float(nsd_tolerance),
               "bootstrap_samples": int(bootstrap_samples), "inference": vars(options)}
    for name in summary["metrics"]:
        if name.split("_class")[0] in metrics.DISTANCE_NAMES:
            summary[name]["num_penalized"] = int(penalized[name])
    reports.write_per_case_csv(rows, output_dir / "per_case.csv",
                               columns=("id", *names, "depth", "height", "width"))
    reports.write_summary_json(summary, output_dir / "summary.json")
    logger.info("Evaluation of %d volumes in %.1f s: dice %.4f; reports in %s", len(rows),
                time.perf_counter() - start, summary["dice"]["mean"], output_dir)
    return rows, summary
