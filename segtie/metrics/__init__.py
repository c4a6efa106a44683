"""Segmentation metrics on 2-D masks and 3-D volumes: a NumPy/SciPy core with documented conventions.

Every metric is a plain function taking ``(y_true, y_pred)``: boolean or 0/1 arrays of
shape ``(height, width)``, or ``(depth, height, width)`` for volumes (``spacing`` then
has three entries, one per axis). ``spacing`` is ``(row, col)`` in millimetres per pixel;
``None`` means distances in pixels. ``roi`` (optional, same shape) restricts every
metric to a region of interest such as a field-of-view mask. Nothing here imports
TensorFlow, the config or MLflow.

* :mod:`~segtie.metrics.overlap`: ``dice``, ``iou``, ``precision``, ``recall``
  (sensitivity), ``specificity``, ``accuracy`` (not in :data:`METRIC_NAMES`; the
  evaluation adds it on request, e.g. for DRIVE); ``dice_from_counts``, the one Dice
  rule (NumPy or ``keras.ops``), which the validation metric
  (:mod:`~segtie.metrics.validation`, TensorFlow) shares with ``dice``, and
  ``mean_defined``, the NaN-skipping mean over classes and images;
* :mod:`~segtie.metrics.surface`: ``hd95``, ``assd``, ``nsd`` (DeepMind
  surface-distance definitions; see that module for where medpy differs);
* :mod:`~segtie.metrics.ranking`: ``auc`` (ROC) and ``average_precision`` of kept
  probabilities;
* :mod:`~segtie.metrics.aggregate`: ``summarize`` (NaN skipped and counted, bootstrap
  confidence interval of the mean).

Empty-mask conventions (as MONAI and nnU-Net; NaN is skipped by :func:`summarize`,
which reports how many values it skipped):

=====================  ====  ====  =========  ======  ===========  ====  ====  ====
case                   dice  iou   precision  recall  specificity  hd95  assd  nsd
=====================  ====  ====  =========  ======  ===========  ====  ====  ====
both empty             1     1     1          1       1            0     0     1
reference empty only   NaN   NaN   NaN        NaN     TN/(TN+FP)   NaN   NaN   NaN
prediction empty only  0     0     NaN        0       TN/(TN+FP)   diag  diag  0
=====================  ====  ====  =========  ======  ===========  ====  ====  ====

A reference without foreground has no meaningful foreground score (any prediction is
either perfect or a false positive), so it is NaN and left out of the mean rather than
counted as 0 or 1; when the prediction is empty too, the agreement is perfect and every
metric takes its best value. A missed object scores an overlap (and NSD) of 0; its
surface distance is undefined, so HD95 and ASSD take a penalty, ``diag``, the image
diagonal in the distance unit (:func:`~segtie.metrics.surface.missed_penalty`, the
BraTS convention), counted in the mean so that missing a structure never improves a
mean distance; the evaluation reports how many cases took it. Precision of an
empty prediction is 0 / 0 and NaN, as in MONAI's confusion-matrix metrics.
Specificity is a background metric and stays defined, and so is ``accuracy``
(``(TP + TN) / N`` inside the ROI: 1 when both are empty, NaN only for an empty ROI).
``auc`` and ``ap`` are NaN when the reference (inside the ROI) has no foreground.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from segtie.metrics._checks import check_pair, prefix
from segtie.metrics.aggregate import bootstrap_ci, rank_cases, summarize
from segtie.metrics.overlap import (Confusion, accuracy, confusion, dice, dice_from_counts,
                                    iou, mean_defined, precision, recall, specificity)
from segtie.metrics.ranking import auc, average_precision, ranking_metrics
from segtie.metrics.surface import (assd, hd95, missed_penalty, nsd, surface_distances,
                                    surface_metrics)

__all__ = [
    "METRIC_NAMES", "RANKING_NAMES", "Confusion", "accuracy", "assd", "auc",
    "average_precision", "bootstrap_ci", "confusion", "dice", "dice_from_counts", "hd95",
    "iou", "mean_defined", "missed_penalty", "nsd", "precision", "rank_cases",
    "ranking_metrics", "recall", "score_case", "score_classes", "specificity",
    "summarize", "surface_distances", "surface_metrics",
]

METRIC_NAMES = ("dice", "iou", "precision", "recall", "specificity", "hd95", "assd", "nsd")
"""Metrics of a thresholded prediction, in report order."""
RANKING_NAMES = ("auc", "ap")
"""Metrics of kept probabilities, in report order."""
DISTANCE_NAMES = ("hd95", "assd")
"""Metrics in millimetres (pixels without spacing); lower is better."""


def score_case(y_true, y_pred, spacing: Optional[Sequence[float]] = None, *,
               probabilities=None, roi=None, tolerance: float = 1.0,
               case_id: Optional[str] = None) -> dict[str, float]:
    """All metrics of one binary case.

    Args:
        y_true: reference mask, boolean or 0/1.
        y_pred: predicted mask, boolean or 0/1.
        spacing: ``(row, col)`` millimetres per pixel; ``None`` = pixels.
        probabilities: optional foreground probabilities in [0, 1]; when given,
            ``auc`` and ``ap`` are added.
        roi: optional region of interest; every metric is computed inside it.
        tolerance: NSD tolerance, in mm with ``spacing``, in pixels without.
        case_id: optional name put in front of error messages.

    Shapes:
        ``y_true``, ``y_pred``, ``probabilities``, ``roi``: ``(height, width)``.

    Returns:
        ``{name: value}`` for :data:`METRIC_NAMES` (then :data:`RANKING_NAMES` with
        ``probabilities``), following the conventions of the module docstring.

    Raises:
        ValueError: masks of different shapes, not 2-D or not binary; bad spacing or
            tolerance; probabilities of another shape, NaN or outside [0, 1]. The
            message names ``case_id``.
    """
    y_true, y_pred = check_pair(y_true, y_pred, case_id)
    scores = {name: fn(y_true, y_pred, roi, case_id=case_id) for name, fn in
              (("dice", dice), ("iou", iou), ("precision", precision),
               ("recall", recall), ("specificity", specificity))}
    scores.update(surface_metrics(y_true, y_pred, spacing, tolerance, roi,
                                  case_id=case_id))
    if probabilities is not None:
        scores.update(ranking_metrics(y_true, probabilities, roi, case_id=case_id))
    return scores


def score_classes(y_true, y_pred, classes: Sequence[int],
                  spacing: Optional[Sequence[float]] = None, *, probabilities=None,
                  roi=None, tolerance: float = 1.0,
                  case_id: Optional[str] = None) -> dict[int, dict[str, float]]:
    """Per-class metrics of a label map, each class scored one-vs-rest.

    Args:
        y_true: reference label map, integers.
        y_pred: predicted label map, integers.
        classes: the labels to score (usually the foreground labels ``1..C-1``).
        spacing, roi, tolerance, case_id: as :func:`score_case`.
        probabilities: optional per-class probabilities, class ``c`` in channel ``c``.

    Shapes:
        ``y_true``, ``y_pred``, ``roi``: ``(height, width)``; ``probabilities``:
        ``(height, width, num_classes)``.

    Returns:
        ``{class: score_case(y_true == class, y_pred == class, ...)}``.

    Raises:
        ValueError: label maps of different shapes or not integer, or as
            :func:`score_case`.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{prefix(case_id)}`{name}` must be an integer label map, "
                             f"received dtype {arr.dtype}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{prefix(case_id)}`y_true` and `y_pred` must have the same "
                         f"shape, received {y_true.shape} and {y_pred.shape}")
    out = {}
    for c in classes:
        probs = None if probabilities is None else np.asarray(probabilities)[..., c]
        out[int(c)] = score_case(y_true == c, y_pred == c, spacing,
                                 probabilities=probs, roi=roi, tolerance=tolerance,
                                 case_id=case_id if case_id is None
                                 else f"{case_id} class {c}")
    return out
