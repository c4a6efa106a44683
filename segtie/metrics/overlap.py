"""Overlap metrics from the confusion counts: Dice, IoU, precision, recall, specificity,
accuracy.

Every function takes ``(y_true, y_pred)``, boolean or 0/1 arrays of shape
``(height, width)``, and an optional ``roi`` of the same shape: pixels outside it are
ignored (they count as neither positive nor negative). The empty-mask conventions are
the table of :mod:`segtie.metrics`: a zero denominator gives NaN, except that when
reference and prediction are both empty (inside the ROI) every metric is perfect (1.0),
and an empty reference makes every foreground metric NaN (the case has no object to
score; only specificity, a background metric, stays defined).

References:
    MONAI ``compute_confusion_matrix_metric`` (NaN for a zero denominator):
    https://docs.monai.io/en/stable/metrics.html
    Maier-Hein et al., "Metrics reloaded", Nature Methods 21, 2024.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from segtie.metrics._checks import apply_roi


class Confusion(NamedTuple):
    """Pixel counts of one case inside the ROI."""

    tp: int
    fp: int
    fn: int
    tn: int


def confusion(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> Confusion:
    """True/false positive/negative pixel counts inside ``roi``.

    Args:
        y_true: reference mask, boolean or 0/1.
        y_pred: predicted mask, boolean or 0/1.
        roi: optional region of interest, boolean or 0/1; ``None`` = whole image.
        case_id: optional name put in front of error messages.

    Shapes:
        ``y_true``, ``y_pred``, ``roi``: ``(height, width)``.

    Returns:
        A :class:`Confusion` of Python ints.

    Raises:
        ValueError: shapes differ, not 2-D, or values other than 0/1.
    """
    y_true, y_pred, roi = apply_roi(y_true, y_pred, roi, case_id)
    tp = int(np.count_nonzero(y_true & y_pred))
    fp = int(np.count_nonzero(y_pred)) - tp
    fn = int(np.count_nonzero(y_true)) - tp
    return Confusion(tp, fp, fn, int(np.count_nonzero(roi)) - tp - fp - fn)


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _reference_based(c: Confusion, value) -> float:
    """The conventions of foreground metrics: both empty -> 1, reference empty -> NaN."""
    if c.tp + c.fn == 0:
        return 1.0 if c.fp == 0 else math.nan
    return value()


def dice(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Dice similarity coefficient ``2 TP / (2 TP + FP + FN)``.

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        Dice in [0, 1]; 1.0 if both masks are empty, NaN if only ``y_true`` is empty.

    References:
        Dice, "Measures of the amount of ecologic association between species",
        Ecology 26(3), 1945.
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    return _reference_based(c, lambda: 2 * c.tp / (2 * c.tp + c.fp + c.fn))


def iou(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Intersection over union (Jaccard index) ``TP / (TP + FP + FN)``.

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        IoU in [0, 1]; 1.0 if both masks are empty, NaN if only ``y_true`` is empty.

    References:
        Jaccard, "The distribution of the flora in the alpine zone", New Phytologist
        11(2), 1912.
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    return _reference_based(c, lambda: c.tp / (c.tp + c.fp + c.fn))


def precision(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Precision (positive predictive value) ``TP / (TP + FP)``.

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        Precision in [0, 1]; 1.0 if both masks are empty; NaN if only ``y_true`` is
        empty, and NaN if only ``y_pred`` is empty (0 / 0, as MONAI).
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    return _reference_based(c, lambda: _ratio(c.tp, c.tp + c.fp))


def recall(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Recall (sensitivity, true positive rate) ``TP / (TP + FN)``.

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        Recall in [0, 1]; 1.0 if both masks are empty, NaN if only ``y_true`` is empty,
        0.0 if only ``y_pred`` is empty.
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    return _reference_based(c, lambda: c.tp / (c.tp + c.fn))


def specificity(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Specificity (true negative rate) ``TN / (TN + FP)``.

    Defined from the background, so it stays a number when the reference is empty
    (it is then one minus the false positive rate of the whole ROI).

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        Specificity in [0, 1]; 1.0 if both masks are empty; NaN only when the
        reference covers the whole ROI (no negative pixel).
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    if c.tp + c.fn == 0 and c.fp == 0:
        return 1.0
    return _ratio(c.tn, c.tn + c.fp)


def accuracy(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Pixel accuracy ``(TP + TN) / N``, ``N`` the number of pixels inside ``roi``.

    A background-dominated metric: on DRIVE (about 12% vessel pixels inside the field
    of view) predicting no vessel at all scores about 0.88, so report it beside Dice.
    It is always defined when the ROI has a pixel (1.0 for two empty masks).

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        Accuracy in [0, 1]; NaN only for an empty ROI.

    References:
        Staal et al., "Ridge-based vessel segmentation in color images of the retina",
        IEEE TMI 2004 (accuracy inside the field of view).
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    return _ratio(c.tp + c.tn, c.tp + c.fp + c.fn + c.tn)
